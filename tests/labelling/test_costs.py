"""Costs recorded with labels: measured while labelling, cached, carried by label directories."""

import json
import warnings

import numpy as np
import pytest
import torch

from skmll import ModelHub, ModelLabeler, SemanticDAG
from skmll.hub import LazyExpert, TorchExpert, count_gflops
from skmll.labelling import LabelStore, expert_statuses, load_label_dir, save_label_dir
from skmll.utils import CorruptRecordWarning, read_record, save_record

from ..hub import _factories


def _sdag():
    """Two nodes of 12 x 9 photos: dark noise and bright noise."""
    rng = np.random.default_rng(3)
    return SemanticDAG(["shade", "dusk", "noon"], edges=[("shade", "dusk"), ("shade", "noon")],
                       data={"dusk": (rng.random((5, 12, 9, 3)) * 90).astype(np.uint8),
                             "noon": (160 + rng.random((4, 12, 9, 3)) * 90).astype(np.uint8)})


def _expert(hidden, name):
    torch.manual_seed(hidden)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, hidden),
                              torch.nn.ReLU(), torch.nn.Linear(hidden, 3))
    return TorchExpert(net, name=name, input_size=(6, 6))


class _CallCounter:
    """Counts the forward passes of a torch module (a forward hook: nothing is replaced)."""

    def __init__(self, expert):
        self.calls = 0
        expert.module.register_forward_hook(self._count)

    def _count(self, *_):
        self.calls += 1


def _flops(hidden):
    return 2 * (108 * hidden + hidden * 3) / 1e9


def test_costs_are_recorded_while_labelling_and_read_back_without_a_forward_pass(tmp_path):
    sdag = _sdag()
    first = ModelLabeler(sdag, cache_dir=tmp_path, verbose=0).fit(
        ModelHub([_expert(40, "wide"), _expert(4, "narrow")]))
    assert first.costs_["wide"].gflops == pytest.approx(_flops(40))
    assert first.costs_["narrow"].gflops == pytest.approx(_flops(4))
    assert all(0 < cost.ms_per_image < 1000 for cost in first.costs_.values())

    again = [_expert(40, "wide"), _expert(4, "narrow")]   # same weights, same fingerprints
    counters = [_CallCounter(e) for e in again]
    second = ModelLabeler(sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub(again))
    assert [c.calls for c in counters] == [0, 0] and second.n_forward_images_ == 0
    assert second.costs_ == first.costs_


def test_expert_without_fingerprint_is_costed_at_every_fit():
    class Brightness:
        name, n_outputs, gflops_per_image = "brightness", 2, 1e-6

        def logits(self, images):
            m = images.mean(axis=(1, 2, 3))
            return np.stack([1 - m, m], axis=1)

    labeler = ModelLabeler(_sdag(), cache_dir=False, verbose=0).fit(ModelHub([Brightness()]))
    assert labeler.costs_["brightness"].gflops == 1e-6
    assert labeler.costs_["brightness"].ms_per_image > 0


def _strip_costs(store):
    """Rewrite every record as skmll wrote it before costs were recorded."""
    for info in store.scan():
        arrays, meta = read_record(store.records, info.key)
        save_record(store.records, info.key, arrays,
                    {k: v for k, v in meta.items() if k != "cost"})
        assert store.cost(info.key) is None


def test_labels_stored_without_a_cost_get_it_measured_once_and_stored(tmp_path):
    sdag = _sdag()
    ModelLabeler(sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub([_expert(12, "older")]))
    store = LabelStore.from_cache_dir(tmp_path)
    _strip_costs(store)

    refit = ModelLabeler(sdag, cache_dir=tmp_path, verbose=0).fit(
        ModelHub([_expert(12, "older")]))
    assert refit.costs_["older"].gflops == pytest.approx(_flops(12))
    [info] = store.scan()
    assert store.cost(info.key) == refit.costs_["older"]
    expert = _expert(12, "older")
    counter = _CallCounter(expert)
    third = ModelLabeler(sdag, cache_dir=tmp_path, verbose=0).fit(ModelHub([expert]))
    assert counter.calls == 0 and third.costs_ == refit.costs_


def _labelled_dir(tmp_path):
    sdag = _sdag()
    hub = ModelHub([LazyExpert("torch:tests.hub._factories:mlp", name="spec-mlp",
                               factory_kwargs={"n_outputs": 3, "hidden": 6, "pixels": 36},
                               input_size=(6, 6), channels=1)])
    labeler = ModelLabeler(sdag, cache_dir=tmp_path, verbose=0).fit(hub)
    save_label_dir(labeler, tmp_path)
    return labeler


def test_label_directories_carry_the_costs(tmp_path):
    labeler = _labelled_dir(tmp_path)
    assert labeler.costs_["spec-mlp"].gflops == pytest.approx(2 * (36 * 6 + 6 * 3) / 1e9)
    built = len(_factories.BUILT)
    opened = load_label_dir(tmp_path)
    assert opened.costs_ == labeler.costs_ and len(_factories.BUILT) == built
    [status] = expert_statuses(tmp_path, opened.sdag, opened.hub_)
    assert status.cost == labeler.costs_["spec-mlp"]


def test_label_directory_written_before_costs_has_them_unknown(tmp_path):
    _labelled_dir(tmp_path)
    _strip_costs(LabelStore(tmp_path / "labels"))
    opened = load_label_dir(tmp_path)          # no images: nothing can be measured
    assert opened.costs_ == {"spec-mlp": None}


def test_malformed_stored_cost_is_reported_and_unknown(tmp_path):
    ModelLabeler(_sdag(), cache_dir=tmp_path, verbose=0).fit(ModelHub([_expert(5, "bad")]))
    store = LabelStore.from_cache_dir(tmp_path)
    [info] = store.scan()
    arrays, meta = read_record(store.records, info.key)
    save_record(store.records, info.key, arrays,
                {**meta, "cost": {"gflops": -2.0, "ms_per_image": 1.0}})
    with pytest.warns(CorruptRecordWarning, match="malformed cost"):
        assert store.cost(info.key) is None
    assert json.loads((store.records / f"{info.key}.json").read_text())["meta"]["cost"]


def test_cost_counted_while_labelling_equals_count_gflops(tmp_path):
    expert = _expert(9, "same")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labeler = ModelLabeler(_sdag(), cache_dir=False, verbose=0).fit(ModelHub([expert]))
    assert labeler.costs_["same"].gflops == count_gflops(expert, np.zeros((1, 5, 5, 3)))
