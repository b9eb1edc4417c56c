"""What the subcommands share: path checks, the selection flags, output writing."""

import argparse
import csv
import io
import json
import os
from pathlib import Path

from ..baselines import SELECTION_METHODS
from ..labelling import load_label_dir
from ..reuse import REUSE_RULES


class UsageError(Exception):
    """The command line itself is wrong (a flag, a value, a path that names nothing): exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors raised as :class:`UsageError` (one line, exit 2) by ``main``."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def existing_file(text):
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"file {text!r} does not exist")
    return Path(text)


def existing_directory(text):
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"directory {text!r} does not exist")
    return Path(text)


def _number(convert, valid, expected):
    """An argparse ``type``: ``convert(text)``, refused with "expected <expected>" unless
    ``valid(value)`` holds."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {value}")
        return value
    return parse


positive_int = _number(int, lambda value: value >= 1, "an integer >= 1")
fraction = _number(float, lambda value: 0 <= value <= 1, "a number in [0, 1]")
non_negative = _number(float, lambda value: value >= 0, "a number >= 0")


def add_label_dir_flags(parser):
    """``--labels DIR`` (a label directory that exists) and ``--hub HUB.toml``."""
    parser.add_argument("--labels", metavar="DIR", required=True, type=existing_directory,
                        help="label directory written by 'skmll label'")
    parser.add_argument("--hub", metavar="HUB.toml", type=existing_file,
                        help="hub file of the experts (default: DIR/hub.toml); use this "
                             "machine's when its model paths differ")


def add_selection_flags(parser):
    """The :class:`~skmll.MLLZeroShotClassifier` and labeler parameters, named after them."""
    group = parser.add_argument_group("selection (MLLZeroShotClassifier parameters)")
    group.add_argument("--k", type=positive_int, default=2, help="experts per class (default 2)")
    group.add_argument("--beta", type=non_negative, default=None,
                       help="largest reuse loss kept (default: any)")
    group.add_argument("--delta", type=fraction, default=1.0,
                       help="label mixing weight in [0, 1] (default 1.0)")
    group.add_argument("--min-similarity", type=float, default=0.0,
                       help="class-node pairs less similar stay unmatched (default 0.0)")
    group.add_argument("--reuse", choices=list(REUSE_RULES), default="profile",
                       help="how selected experts' outputs are combined (default profile)")
    group.add_argument("--selection", choices=list(SELECTION_METHODS), default="chco",
                       help="how experts are selected: CHCO or a baseline (default chco; "
                            "logme and leep run the experts on the SDAG's images, which a "
                            "label directory does not hold)")
    group.add_argument("--random-state", type=int, default=None,
                       help="seed of the baselines' draws (default: a fresh draw)")
    cache = group.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", metavar="PATH", default=None,
                       help="where node text embeddings are cached (default: $SKMLL_CACHE_DIR "
                            "or ~/.cache/skmll)")
    cache.add_argument("--no-cache", dest="cache_dir", action="store_false",
                       help="cache no text embedding")


def fitted_classifier(args, classes, *, on_uncovered):
    """The classifier for ``classes`` fitted on the label directory: reads labels, builds no
    model."""
    method = SELECTION_METHODS[args.selection]
    given = {"beta": args.beta, "random_state": args.random_state}
    takes = method._get_param_names()
    refused = [name for name, value in given.items() if value is not None and name not in takes]
    if refused:
        raise UsageError(f"--selection {args.selection} takes no "
                         + ", ".join("--" + name.replace("_", "-") for name in refused))
    labeler = load_label_dir(args.labels, hub=args.hub, delta=args.delta)
    classifier = method(
        classes, labeler, k=args.k, min_similarity=args.min_similarity, reuse=args.reuse,
        on_uncovered=on_uncovered, cache_dir=args.cache_dir, verbose=args.verbose,
        **{name: value for name, value in given.items() if value is not None})
    return classifier.fit()


def as_json(document):
    return json.dumps(document, indent=2, ensure_ascii=False)


def as_csv(header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def as_table(header, rows):
    """Left-aligned columns for people to read (CSV and JSON are for programs)."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in cells)
