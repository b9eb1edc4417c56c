"""predict throughput against raw forward passes of the distinct selected experts.

Both sides see the same uint8 test images (28 x 28 grayscale). The raw side is what a user
would write without skmll: each selected expert's network is rebuilt from its architecture
and its weights (a fresh module that no :class:`TorchExpert` has touched, so the adapter's
in-place switch to channels-last cannot reach it), and run over the images in the expert's
batch size, preprocessed by hand (uint8 -> float in [0, 1] -> ``(x - mean) / std`` -> module,
under ``torch.inference_mode``), once with network and input in plain NCHW and once with both
in channels-last. The images are gray and so are the experts; skmll keeps a gray batch as one
plane (``as_image_batch`` makes no RGB copy), and with one channel an NCHW and a channels-last
input are the same bytes, so the two raw runs differ in the networks' weight layout only. The
raw outputs are checked against the adapters' before any timing.

``ratio = raw time / predict_proba time`` is the fraction of raw throughput that
``predict_proba`` keeps (goal >= 0.9), in this process's CPU time (steadier than wall time on
a shared machine); median of ``--repeats`` interleaved repetitions.

Library experts (``--library``, run after the world's tasks, or alone with ``--library-only``):
adapters whose preprocessing is their library's own, against the loop a user of that library
writes. Randomly initialised models of real architectures (transformers' ResNet-18 with
microsoft/resnet-18's ConvNext processor settings, torchvision and PIL backends; timm's
resnet18 with resnet18.tv_in1k's bilinear config, batched by skmll, and with resnet18's default
bicubic config, run by skmll one PIL image at a time) label ``--library-n`` uint8 photos of
varied sizes. Raw: ``model(**processor(images))`` batch by batch on the uint8 arrays, or timm's
``create_transform`` on each PIL image, then the model (channels-last, as the adapters run
it, so only the preprocessing differs); skmll: ``run_expert`` on
``as_image_batch`` of the same arrays (the conversion included). Outputs are checked equal
(transformers: to float rounding; timm bilinear: to skmll's one-level resize difference)
before timing.

Usage: python benchmarks/bench_predict.py [--n 2000] [--repeats 5] [--threads 1]
                                          [--library-n 128] [--library-only]
"""

import argparse
import time

import numpy as np
import torch

from skmll import MLLZeroShotClassifier, ModelLabeler, SemanticDAG
from skmll.datasets import make_world, train_world_experts
from skmll.hub import ModelHub, as_image_batch, run_expert

LAYOUTS = {"NCHW": torch.contiguous_format, "channels-last": torch.channels_last}


def raw_network(spec, expert, memory_format):
    """The expert's network rebuilt from its spec and weights, in eval mode, ``memory_format``."""
    net = spec.build_module()
    net.load_state_dict(expert.module.state_dict())  # copies values into net's own layout
    net = net.eval().to(memory_format=memory_format)
    if not all(p.is_contiguous(memory_format=memory_format) for p in net.parameters()
               if p.dim() == 4):
        raise RuntimeError(f"raw {spec.name} is not in {memory_format}")
    return net


def raw_forward(networks, images, memory_format):
    """Each network over all images, batch by batch; returns the logits of each network."""
    outputs = []
    with torch.inference_mode():
        for net, (mean, std, batch_size) in networks:
            logits = []
            for start in range(0, len(images), batch_size):
                tensor = torch.from_numpy(images[start:start + batch_size]).float().div_(255)
                tensor = ((tensor[:, None] - mean) / std).contiguous(memory_format=memory_format)
                logits.append(net(tensor))
            outputs.append(torch.cat(logits).numpy())
    return outputs


def timed(function, *args):
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(clf, labeler, specs, images, repeats):
    """Median (wall, CPU) seconds of predict_proba and of each raw layout, interleaved."""
    used = sorted({e for entries in clf.experts_.values() for e, _, _ in entries})
    experts = [labeler.hub_[e] for e in used]
    raw = {name: [(raw_network(specs[e.name], e, layout),
                   (specs[e.name].mean, specs[e.name].std, e.batch_size)) for e in experts]
           for name, layout in LAYOUTS.items()}
    batch = as_image_batch(images)
    for name, layout in LAYOUTS.items():
        for mine, expert in zip(raw_forward(raw[name], images, layout), experts):
            np.testing.assert_allclose(mine, expert.logits(batch), rtol=1e-4, atol=1e-4,
                                       err_msg=f"raw {expert.name} ({name}) != adapter")
    runs = {f"raw, {name}": (raw_forward, raw[name], images, layout)
            for name, layout in LAYOUTS.items()}
    runs["predict_proba"] = (clf.predict_proba, images)
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (function, *args) in runs.items():
            times[name].append(timed(function, *args))
    return used, {name: np.median(values, axis=0) for name, values in times.items()}


def library_photos(n, seed=0):
    """``n`` uint8 RGB photos of sizes from 180 to 400 pixels a side, a few sizes repeated."""
    rng = np.random.default_rng(seed)
    sizes = [(240, 320), (320, 240), (375, 500), (224, 224), (180, 400)]
    return [rng.integers(0, 256, (*sizes[i % len(sizes)][:2], 3), dtype=np.uint8)
            for i in range(n)]


def channels_last(tensor):
    return tensor.contiguous(memory_format=torch.channels_last)


def hf_expert_and_raw(folder, backend):
    """An HFExpert of a random ResNet-18 and the user's loop with the same processor."""
    from transformers import (AutoImageProcessor, AutoModelForImageClassification,
                              ConvNextImageProcessor, ResNetConfig)

    from skmll.hub import HFExpert

    torch.manual_seed(0)
    resnet_18 = ResNetConfig(layer_type="basic", depths=[2, 2, 2, 2],   # microsoft/resnet-18
                             hidden_sizes=[64, 128, 256, 512])
    AutoModelForImageClassification.from_config(resnet_18).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875, resample=3,
                           image_mean=[0.485, 0.456, 0.406],
                           image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    model = model.to(memory_format=torch.channels_last)
    processor = AutoImageProcessor.from_pretrained(folder, backend=backend)

    def raw(images, batch_size):
        with torch.inference_mode():
            return torch.cat([model(pixel_values=channels_last(processor(
                images=images[start:start + batch_size], return_tensors="pt")["pixel_values"]))
                .logits for start in range(0, len(images), batch_size)]).numpy()
    return HFExpert(folder, processor_kwargs={"backend": backend}), raw


def timm_expert_and_raw(overlay):
    """A TimmExpert of a random resnet18 and timm's evaluation loop on PIL images."""
    import copy

    import timm
    from PIL import Image

    from skmll.hub import TimmExpert

    torch.manual_seed(0)
    expert = TimmExpert("resnet18", pretrained_cfg_overlay=overlay)
    model = copy.deepcopy(expert.module)   # a channels-last copy, as the adapter's
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model),
                                           is_training=False)

    def raw(images, batch_size):
        with torch.inference_mode():
            return torch.cat([model(channels_last(torch.stack([
                transform(Image.fromarray(image)) for image in images[start:start + batch_size]
            ]))) for start in range(0, len(images), batch_size)]).numpy()
    return expert, raw


def library_rows(n, repeats):
    """(name, skmll CPU s, raw CPU s) per library expert, median of interleaved runs."""
    import tempfile

    images = library_photos(n)
    with tempfile.TemporaryDirectory() as folder:
        cases = {f"hf resnet-18 ({backend})": (*hf_expert_and_raw(f"{folder}/{backend}",
                                                                  backend), 1e-3)
                 for backend in ("torchvision", "pil")}
        cases["timm resnet18 (bilinear, batched)"] = (
            *timm_expert_and_raw({"interpolation": "bilinear", "crop_pct": 0.875}), 0.05)
        cases["timm resnet18 (bicubic, per PIL image)"] = (*timm_expert_and_raw({}), 1e-3)
        for name, (expert, raw, tolerance) in cases.items():
            mine, theirs = run_expert(expert, as_image_batch(images)), raw(images,
                                                                           expert.batch_size)
            np.testing.assert_allclose(mine, theirs, rtol=0,
                                       atol=tolerance * np.abs(theirs).max(), err_msg=name)
            times = [(timed(lambda: run_expert(expert, as_image_batch(images)))[1],
                      timed(raw, images, expert.batch_size)[1]) for _ in range(repeats)]
            yield (name, *np.median(times, axis=0))


def print_library_rows(args):
    print(f"library experts, {args.library_n} uint8 photos of 5 sizes, median of "
          f"{args.repeats} interleaved runs; ratio = raw CPU time / skmll CPU time")
    for name, mine, raw in library_rows(args.library_n, args.repeats):
        print(f"{name:40s} skmll {mine:.3f} s CPU, raw {raw:.3f} s CPU (ratio {raw / mine:.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: stable timings on a shared machine)")
    parser.add_argument("--library-n", type=int, default=128)
    parser.add_argument("--library-only", action="store_true",
                        help="time only the transformers and timm experts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.library_only:
        print_library_rows(args)
        return
    world = make_world(fashion_test=args.n)
    trained = train_world_experts(world, verbose=0)
    specs = {result.spec.name: result.spec for result in trained}
    hub = ModelHub(result.expert for result in trained)
    labeler = ModelLabeler(SemanticDAG.from_wordnet(world.reference), verbose=0).fit(hub)
    print(f"median of {args.repeats} interleaved runs, torch threads {torch.get_num_threads()}; "
          "ratio = raw CPU time / predict_proba CPU time")
    for name, ids in (("fashion-10", list(range(10))), ("garments+digits",
                                                        [0, 1, 2, 3, 4, 6] + list(range(10, 20)))):
        images, _, names, _ = world.task(ids)
        # No general model here: classes the hub cannot serve are left out (and named below).
        clf = MLLZeroShotClassifier(names, labeler, k=2, batch_size=len(images),
                                    on_uncovered="drop").fit()
        clf.predict_proba(images)  # warm-up: first-call costs of torch
        used, median = compare(clf, labeler, specs, images, args.repeats)
        predict_wall, predict_cpu = median["predict_proba"]
        ratios = ", ".join(f"{layout} raw {median[f'raw, {layout}'][1]:.3f} s "
                           f"(ratio {median[f'raw, {layout}'][1] / predict_cpu:.3f})"
                           for layout in LAYOUTS)
        print(f"{name:16s} {len(images)} images, {len(used)} distinct experts for "
              f"{len(names)} classes: predict_proba {predict_cpu:.3f} s CPU "
              f"({predict_wall:.3f} s wall); {ratios}; left out: "
              f"{clf.dropped_classes_ or 'none'}")
    print_library_rows(args)


if __name__ == "__main__":
    main()
