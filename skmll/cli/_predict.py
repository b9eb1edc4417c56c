"""``skmll predict``: classify image files for a task given as class names."""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from ..hub import set_max_image_pixels
from ..hub._images import as_image_batch, is_image_path
from ..utils import progress
from ._common import UsageError, as_csv, as_json, positive_int, write_output
from ._fitting import add_classifier_flags, fitted_classifier

EXAMPLES = """\
examples:
  skmll predict --labels labels/ --classes cat dog sandal -- photos/*.png
  skmll predict photos/ --labels labels/ --classes cat dog --out predictions.csv
  skmll predict --labels labels/ --hub my-hub.toml --classes cat dog --format json -- a.jpg

End the class list with '--' (or put the images first). A folder stands for the image files
directly inside it. Only the experts selected for the classes are built. Output: one row per
image with the predicted class and one probability column per class (columns in sorted class
order, as MLLZeroShotClassifier.classes_), as CSV or JSON, to stdout or --out (its extension,
.csv or .json, sets the format). With --skip-bad-images, files that cannot be read as images
are left out and listed on stderr with the reason; the others are predicted as they would be
without them."""

_FIXED_COLUMNS = ("image", "prediction")


def register_subcommand(subparsers, parents):
    parser = subparsers.add_parser(
        "predict", parents=parents,
        description="Classify image files zero-shot for the given class names.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", metavar="IMAGE", nargs="+",
                        help="image files, or folders of image files")
    parser.add_argument("--classes", metavar="CLASS", nargs="+", required=True,
                        action="extend", help="class names")
    add_classifier_flags(parser, "the selected experts and the general model")
    parser.add_argument("--on-uncovered", choices=["raise", "drop"], default="raise",
                        help="classes neither an expert nor the general model serves: fail "
                             "with exit code 1 (raise) or leave them out (drop)")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="leave out files that cannot be read as images (listed on stderr "
                             "with the reason) instead of failing")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="images read and classified at a time (default 256)")
    parser.add_argument("--out", metavar="FILE", help="write here (.csv or .json) instead of "
                                                      "stdout")
    parser.add_argument("--format", choices=["csv", "json"], default=None,
                        help="output format (default: the --out extension, else csv)")
    parser.add_argument("--max-image-pixels", type=positive_int, default=None,
                        help="an image file with more pixels (width x height) is refused "
                             "before decoding (default 89478485, PIL's)")
    parser.set_defaults(run=run)


def run(args):
    if args.max_image_pixels is None:
        return _predict(args)
    previous = set_max_image_pixels(args.max_image_pixels)
    try:
        return _predict(args)
    finally:
        set_max_image_pixels(previous)


def _predict(args):
    output_format = _output_format(args)
    paths = _image_paths(args.images)
    classifier = fitted_classifier(args, args.classes, on_uncovered=args.on_uncovered)
    columns = [str(c) for c in classifier.classes_]
    clash = sorted(set(columns) & set(_FIXED_COLUMNS))
    if clash and output_format == "csv":
        raise UsageError(f"class name(s) {clash} would repeat a CSV column name: use --format "
                         "json")
    rows, skipped = [], {}
    starts = range(0, len(paths), args.batch_size)
    for start in progress(starts, verbose=args.verbose, desc="predicting", unit="batch"):
        chunk = paths[start:start + args.batch_size]
        chunk, probabilities = _predicted(classifier, chunk, skipped if args.skip_bad_images
                                          else None)
        predicted = classifier.classes_[probabilities.argmax(axis=1)]
        rows += [(path, str(label), [float(p) for p in row])
                 for path, label, row in zip(chunk, predicted, probabilities)]
    _report_skipped(skipped, len(paths))
    if output_format == "json":
        text = as_json([{"image": path, "prediction": label,
                         "probabilities": dict(zip(columns, row))} for path, label, row in rows])
        text += "\n"
    else:
        text = as_csv([*_FIXED_COLUMNS, *columns],
                      [[path, label, *map(repr, row)] for path, label, row in rows])
    if args.out:
        write_output(args.out, text)
    else:
        print(text, end="")
    return 0


def _predicted(classifier, paths, skipped):
    """``(paths predicted, their probabilities)``. When ``skipped`` is a dict, files that cannot
    be read are left out and recorded there with the reason; an image's probabilities do not
    depend on the other images of its batch, so the rest come out as they would alone."""
    try:
        return paths, classifier.predict_proba(paths)
    except (ValueError, TypeError):
        if skipped is None:
            raise
        bad = _unreadable(paths)
        if not bad:
            raise   # every file reads: the failure is not the images'
    skipped.update(bad)
    readable = [path for path in paths if path not in bad]
    if not readable:
        return [], np.zeros((0, len(classifier.classes_)))
    return readable, classifier.predict_proba(readable)


def _unreadable(paths):
    """``{path: reason}`` for the files that do not decode as images."""
    bad = {}
    for path in paths:
        try:
            as_image_batch([path])
        except (ValueError, TypeError) as exc:
            bad[path] = str(exc)
    return bad


def _report_skipped(skipped, n_images):
    if not skipped:
        return
    print(f"skmll predict: skipped {len(skipped)} of {n_images} image(s) that could not be "
          "read (--skip-bad-images):", file=sys.stderr)
    for path, why in skipped.items():
        print(f"  {path}: {' '.join(why.split())}", file=sys.stderr)
    if len(skipped) == n_images:
        raise ValueError("no image could be read")


def _output_format(args):
    if not args.out:
        return args.format or "csv"
    by_extension = {".csv": "csv", ".json": "json"}.get(Path(args.out).suffix.lower())
    if by_extension is None and args.format is None:
        raise UsageError(f"--out {args.out!r}: name a .csv or .json file, or give --format")
    if by_extension and args.format and by_extension != args.format:
        raise UsageError(f"--out {args.out!r} and --format {args.format} disagree")
    return args.format or by_extension


def _image_paths(arguments):
    """Files as given; a folder as its image files (sorted), directly inside it."""
    paths = []
    for argument in arguments:
        if os.path.isdir(argument):
            paths += sorted(str(p) for p in Path(argument).iterdir()
                            if p.is_file() and is_image_path(p))
        elif os.path.isfile(argument):
            paths.append(argument)
        else:
            raise UsageError(f"image {argument!r} does not exist")
    if not paths:
        raise UsageError(f"no image files in {arguments}")
    return paths
