"""FLOPs and time per image: counted against hand counts, ONNX graphs against torch's counter."""

import math
import os

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from skmll.hub import (
    ExpertCost,
    LazyExpert,
    MemoizedExpert,
    OnnxExpert,
    TimmExpert,
    TorchExpert,
    count_gflops,
    measure_cost,
)

# Photos of another size than any expert's input: each expert resizes them itself.
PHOTOS = np.random.default_rng(7).random((3, 21, 17, 3), dtype=np.float32)


class _Mixed(torch.nn.Module):
    """Conv (grouped, strided), transposed conv, a batched matmul and a linear layer."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3)
        self.up = torch.nn.ConvTranspose2d(6, 4, 2, stride=2)
        self.mix = torch.nn.Parameter(torch.randn(4, 12, 12))
        self.head = torch.nn.Linear(4 * 16 * 12, 5)

    def forward(self, x):
        x = self.up(torch.relu(self.conv(x)))                 # (n, 4, 16, 12)
        x = torch.matmul(x[:, :, :12, :], self.mix)             # (n, 4, 12, 12), batched
        x = torch.cat([x, x[:, :, :4, :]], dim=2)              # (n, 4, 16, 12)
        return self.head(x.flatten(1))


def _mixed_hand_count():
    conv = 2 * (6 * 8 * 6) * (1 * 3 * 3)          # output elements x weights read per output
    up = 2 * (6 * 8 * 6) * (4 * 2 * 2)            # input elements x outputs each one feeds
    matmul = 2 * (4 * 12 * 12) * 12               # output elements x inner size
    linear = 2 * (4 * 16 * 12) * 5
    return conv + up + matmul + linear


def _export(module, path, shape):
    torch.onnx.export(module, torch.zeros(1, *shape), path, dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}})
    return path


def test_linear_expert_counts_two_flops_per_multiply_add():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 10 * 6, 4))
    expert = TorchExpert(net, name="linear", input_size=(10, 6))
    assert count_gflops(expert, PHOTOS) * 1e9 == pytest.approx(2 * 180 * 4)


def test_grouped_strided_conv_matches_the_hand_count():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3),
                              torch.nn.Flatten())
    expert = TorchExpert(net, name="conv", input_size=(16, 12))
    assert count_gflops(expert, PHOTOS) * 1e9 == pytest.approx(2 * (6 * 8 * 6) * 9)


def test_grayscale_conversion_is_preprocessing_and_not_counted():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 3))
    expert = TorchExpert(net, name="gray", input_size=(16, 16), channels=1)
    assert count_gflops(expert, PHOTOS) * 1e9 == pytest.approx(2 * 256 * 3)


def test_onnx_graph_count_equals_the_torch_counter_on_the_same_module(tmp_path):
    module = _Mixed().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(1, 3, 16, 12))
    assert counter.get_total_flops() == _mixed_hand_count()
    onnx_expert = OnnxExpert(_export(module, str(tmp_path / "mixed.onnx"), (3, 16, 12)))
    torch_expert = TorchExpert(module, name="mixed", input_size=(16, 12))
    assert count_gflops(onnx_expert, PHOTOS) * 1e9 == pytest.approx(_mixed_hand_count())
    assert count_gflops(torch_expert, PHOTOS) * 1e9 == pytest.approx(_mixed_hand_count())


def test_onnx_graph_with_an_operation_without_formula_has_no_count(tmp_path):
    class Bilinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(8, 8, 3))

        def forward(self, x):
            return torch.einsum("nchw,hwk->nk", x, self.weight)

    expert = OnnxExpert(_export(Bilinear().eval(), str(tmp_path / "einsum.onnx"), (3, 8, 8)))
    assert count_gflops(expert, PHOTOS) is None


def test_keras_expert_on_the_torch_backend_is_counted(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from skmll.hub import KerasExpert

    model = keras.Sequential([keras.Input((6, 10, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.Flatten(), keras.layers.Dense(5)])
    path = str(tmp_path / "small.keras")
    model.save(path)
    expected = 2 * (4 * 4 * 8) * (3 * 3 * 3) + 2 * (4 * 4 * 8) * 5
    assert count_gflops(KerasExpert(path), PHOTOS) * 1e9 == pytest.approx(expected)


class _Protocol:
    name, n_outputs = "protocol", 2

    def logits(self, images):
        return np.zeros((len(images), 2))


def test_protocol_expert_declares_its_count_or_has_none():
    assert count_gflops(_Protocol(), PHOTOS) is None
    declared = _Protocol()
    declared.gflops_per_image = 0.25
    assert count_gflops(declared, PHOTOS) == 0.25
    declared.gflops_per_image = float("nan")
    with pytest.raises(ValueError, match="protocol.*gflops_per_image"):
        count_gflops(declared, PHOTOS)


def test_memoized_expert_is_counted_and_timed_through_the_expert_it_wraps():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 7))
    inner = TorchExpert(net, name="memo", input_size=(4, 4))
    memo = MemoizedExpert(inner)
    memo.logits(PHOTOS)   # remembered: a forward through the memory would count nothing
    assert count_gflops(memo, PHOTOS) * 1e9 == pytest.approx(2 * 48 * 7)
    assert measure_cost(memo, PHOTOS, repeats=2).gflops == count_gflops(inner, PHOTOS)


def test_lazy_expert_is_built_for_the_count_and_released():
    lazy = LazyExpert("timm:test_resnet", num_classes=3, name="lazy", n_outputs=3)
    built = TimmExpert("test_resnet", num_classes=3)
    counted = count_gflops(lazy, PHOTOS)
    assert counted == pytest.approx(count_gflops(built, PHOTOS)) and counted > 0
    assert not lazy.is_loaded


def test_measure_cost_times_the_forward_and_counts_flops():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 3))
    cost = measure_cost(TorchExpert(net, name="mlp", input_size=(32, 32)), PHOTOS, repeats=3)
    assert cost.gflops * 1e9 == pytest.approx(2 * (3072 * 64 + 64 * 3))
    assert 0 < cost.ms_per_image < 1000
    with pytest.raises(ValueError, match="repeats"):
        measure_cost(_Protocol(), PHOTOS, repeats=0)


@pytest.mark.parametrize("gflops, ms", [(-1.0, 1.0), (1.0, math.nan), (True, 1.0), (1.0, None)])
def test_expert_cost_refuses_what_is_not_a_cost(gflops, ms):
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        ExpertCost(gflops, ms)


def test_expert_cost_round_trips_through_json_and_refuses_other_dicts():
    cost = ExpertCost(None, 3.5)
    assert ExpertCost.from_dict(cost.to_dict()) == cost and cost.value("gflops") is None
    with pytest.raises(ValueError, match="keys gflops and ms_per_image"):
        ExpertCost.from_dict({"gflops": 1.0})
    with pytest.raises(ValueError, match="unit"):
        cost.value("seconds")


class _Tokens(torch.nn.Module):
    """Image rows as tokens through torch's multi-head attention (fused when inferring)."""

    def __init__(self):
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(24, 2, batch_first=True)
        self.head = torch.nn.Linear(24, 3)

    def forward(self, x):
        tokens = x.reshape(len(x), 8, 24)   # 3 x 8 x 8 pixels as 8 tokens of 24
        return self.head(self.attention(tokens, tokens, tokens)[0].mean(dim=1))


def test_attention_is_counted_although_torch_fuses_it_when_inferring():
    expert = TorchExpert(_Tokens().eval(), name="tokens", input_size=(8, 8))
    tokens, width = 8, 24
    projections = 2 * tokens * width * 3 * width + 2 * tokens * width * width
    attention = 2 * (2 * tokens * tokens * width)            # scores, then weighted values
    assert count_gflops(expert, PHOTOS) * 1e9 == pytest.approx(
        projections + attention + 2 * width * 3)
    assert torch.backends.mha.get_fastpath_enabled()         # left as it was
