"""``--general-model``: the model that serves the classes no expert covers, from the CLI."""

import argparse
from pathlib import Path

from ._common import UsageError, existing_file

SOURCES = ("conse", "open_clip", "transformers")

HELP = """\
general model for the classes no expert serves: conse:EXPERT (ConSE over EXPERT, an
expert of the hub whose head_names are declared, or an ImageNet-1k classifier with 1000
outputs), open_clip:ARCH (an open_clip architecture with --general-weights FILE, or
open_clip:hf-hub:ORG/REPO / open_clip:local-dir:PATH), transformers:PATH (a folder holding a
CLIPModel with its tokenizer and image processor) (default: none). Its share of each image
is taken as it is, the paper's rule: a label directory holds no images to calibrate it on"""


def general_model_spec(text):
    """An argparse ``type``: ``SOURCE:WHAT`` with a known source."""
    source, sep, what = text.partition(":")
    if not sep or not what or source not in SOURCES:
        raise argparse.ArgumentTypeError(
            f"expected {' or '.join(s + ':...' for s in SOURCES)}; got {text!r}")
    return source, what


def add_general_model_flags(parser):
    group = parser.add_argument_group("general model (MLLZeroShotClassifier general_model)")
    group.add_argument("--general-model", metavar="SOURCE:WHAT", type=general_model_spec,
                       default=None, help=HELP)
    group.add_argument("--general-weights", metavar="FILE", type=existing_file, default=None,
                       help="the weights file of --general-model open_clip:ARCH (.pt read "
                            "with weights_only=True, or .safetensors)")


def build_general_model(args, hub):
    """The general model the flags name (None when none is named), on ``args.device``."""
    if args.general_model is None:
        if args.general_weights is not None:
            raise UsageError("--general-weights needs --general-model open_clip:ARCH")
        return None
    source, what = args.general_model
    if args.general_weights is not None and source != "open_clip":
        raise UsageError("--general-weights is for --general-model open_clip:ARCH only")
    device = args.device or "cpu"
    from ..reuse import CLIPZeroShot

    if source == "open_clip":
        return CLIPZeroShot.from_open_clip(what, checkpoint_path=args.general_weights,
                                           device=device)
    if source == "transformers":
        if not Path(what).is_dir():
            raise UsageError(f"--general-model transformers:{what}: no such folder (the "
                             "folder of a CLIPModel saved with its processor)")
        return CLIPZeroShot.from_transformers(what, device=device)
    return _conse(what, hub, args.device)


def _conse(name, hub, device):
    from ..reuse import ConSE

    if name not in hub.names:
        raise UsageError(f"--general-model conse:{name}: no expert {name!r} in the hub (it has "
                         f"{', '.join(hub.names)})")
    expert = hub[name]
    if device is not None:
        expert.to(device)
    if getattr(expert, "head_names", None) is None and getattr(expert, "loads_on_demand", False):
        expert.load()   # the names its model reports (ConSE runs it anyway)
    head_names = getattr(expert, "head_names", None)
    if head_names is not None:
        return ConSE(expert, head_names)
    if expert.n_outputs != 1000:
        raise UsageError(f"--general-model conse:{name}: the expert declares no head_names and "
                         f"has {expert.n_outputs} outputs, not ImageNet-1k's 1000: declare its "
                         "head_names in the hub file")
    return ConSE.from_imagenet(expert)
