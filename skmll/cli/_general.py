"""``--general-model``: the model that serves the classes no expert covers, from the CLI."""

import argparse
from pathlib import Path

from ._common import UsageError, existing_file, fraction

SOURCES = ("conse", "open_clip", "transformers")

HELP = """\
general model for the classes no expert serves: conse:EXPERT (ConSE over EXPERT, an
expert of the hub whose head_names are declared, or an ImageNet-1k classifier with 1000
outputs), open_clip:ARCH (an open_clip architecture with --general-weights FILE, or
open_clip:hf-hub:ORG/REPO / open_clip:local-dir:PATH), transformers:PATH (a folder holding a
CLIPModel with its tokenizer and image processor) (default: none)"""

PATCH_HELP = """\
how far the general model's share of an image is trusted: at most this fraction of the
covered classes' reference images (those the label directory keeps) may go to an uncovered
class (default: MLLZeroShotClassifier's, 0.01); 'none' takes the share as it is (the paper's
rule)"""


def general_model_spec(text):
    """An argparse ``type``: ``SOURCE:WHAT`` with a known source."""
    source, sep, what = text.partition(":")
    if not sep or not what or source not in SOURCES:
        raise argparse.ArgumentTypeError(
            f"expected {' or '.join(s + ':...' for s in SOURCES)}; got {text!r}")
    return source, what


def patch_calibration(text):
    """An argparse ``type``: a fraction in [0, 1], or ``none`` (the paper's rule)."""
    return "none" if text.strip().lower() == "none" else fraction(text)


def patch_calibration_kwargs(args):
    """``patch_calibration`` for the classifier as ``--patch-calibration`` gives it; nothing
    when the flag is not given, so that the classifier's own default applies."""
    if args.patch_calibration is None:
        return {}
    return {"patch_calibration": None if args.patch_calibration == "none"
            else args.patch_calibration}


def add_general_model_flags(parser):
    group = parser.add_argument_group("general model (MLLZeroShotClassifier general_model)")
    group.add_argument("--general-model", metavar="SOURCE:WHAT", type=general_model_spec,
                       default=None, help=HELP)
    group.add_argument("--general-weights", metavar="FILE", type=existing_file, default=None,
                       help="the weights file of --general-model open_clip:ARCH (.pt read "
                            "with weights_only=True, or .safetensors)")
    group.add_argument("--patch-calibration", metavar="FRACTION|none", type=patch_calibration,
                       default=None, help=PATCH_HELP)


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
