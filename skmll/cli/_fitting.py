"""The classifier a subcommand serves from: the label directory, the selection method and
the general model that the flags name, fitted, with what it cannot serve said in flags."""

import sys

from ._common import (
    UsageError,
    add_device_flag,
    add_label_dir_flags,
    add_selection_flags,
    open_label_dir,
)
from ._general import add_general_model_flags, build_general_model, patch_calibration_kwargs
from ._reasons import SERVE_HINT, UncoveredError, uncovered_message, uncovered_reasons


def add_classifier_flags(parser, device_use):
    """The flags of the classifier a subcommand serves from: the label directory, the
    selection, the general model and the device (``device_use``: what runs there)."""
    add_label_dir_flags(parser)
    add_selection_flags(parser)
    add_general_model_flags(parser)
    add_device_flag(parser, device_use)


def fitted_classifier(args, classes, *, on_uncovered):
    """The classifier for ``classes`` fitted on the label directory: reads labels, builds no
    expert (the general model, when one is named, is built).

    Raises
    ------
    UncoveredError
        When no class is served (by an expert or the general model), or some class is not and
        ``on_uncovered="raise"``: one line with every such class's reason and the flags to use.
    """
    stage(args, "loading skmll")
    from ..baselines import SELECTION_METHODS   # here: 'skmll --help' imports no torch

    method = SELECTION_METHODS[args.selection]
    chosen = _method_flags(method, args)
    stage(args, f"reading the label directory {args.labels}")
    labeler = open_label_dir(args)
    if args.general_model is not None:
        stage(args, "building the general model {}:{}".format(*args.general_model))
    general_model = build_general_model(args, labeler.hub_)
    classifier = method(
        classes, labeler, k=args.k, min_similarity=args.min_similarity, reuse=args.reuse,
        general_model=general_model, on_uncovered="drop", cache_dir=args.cache_dir,
        device=args.device, verbose=args.verbose, **patch_calibration_kwargs(args), **chosen)
    stage(args, f"matching {len(classes)} class name(s) to {labeler.sdag.n_nodes} SDAG nodes "
                f"(text encoder) and selecting among {len(labeler.hub_)} experts")
    return _fit_serving(classifier, args, on_uncovered)


def _fit_serving(classifier, args, on_uncovered):
    """``classifier.fit()``, with the classes it cannot serve reported in the CLI's terms."""
    classes, general_model = classifier.classes, classifier.general_model
    from ..labelling import NoReferenceImagesError

    try:
        classifier.fit()
    except NoReferenceImagesError:
        raise ValueError(f"the label directory {str(args.labels)!r} keeps no reference "
                             "images to calibrate the general model's share on (it was written "
                             "by an skmll that did not keep them): label it again with 'skmll "
                             "label', or give --patch-calibration none (the paper's rule)"
                             ) from None
    except ValueError:
        if (general_model is not None or getattr(classifier, "experts_", None) is None
                or any(classifier.experts_.values())):
            raise   # not the "no class is covered" of a fit that matched and selected
        reasons = uncovered_reasons(classifier, args)
        raise UncoveredError(uncovered_message(reasons, len(classes), SERVE_HINT)) from None
    if on_uncovered == "raise" and classifier.dropped_classes_:
        reasons = uncovered_reasons(classifier, args)
        raise UncoveredError(uncovered_message(
            reasons, len(classes), f"{SERVE_HINT}, or --on-uncovered drop to leave them out"))
    return classifier


def stage(args, what):
    """Say on stderr what the command is doing now, when progress is shown (``-v``, a
    terminal): the steps before the first progress bar take seconds."""
    if args.verbose:
        print(f"skmll {args.command}: {what} ...", file=sys.stderr, flush=True)


def _method_flags(method, args):
    """The flags that only some selection methods take, as keyword arguments for ``method``;
    a usage error names any given flag that ``method`` does not take."""
    given = {"beta": args.beta, "random_state": args.random_state, "max_cost": args.max_cost}
    takes = method._get_param_names()
    refused = [name for name, value in given.items() if value is not None and name not in takes]
    if refused:
        raise UsageError(f"--selection {args.selection} takes no "
                         + ", ".join("--" + name.replace("_", "-") for name in refused))
    chosen = {name: value for name, value in given.items() if value is not None}
    if "cost_unit" in takes:
        chosen["cost_unit"] = args.cost_unit
    return chosen
