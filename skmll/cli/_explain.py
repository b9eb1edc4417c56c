"""``skmll explain``: the classifier's account of its selection, heads included."""

import argparse

from ._common import add_label_dir_flags, add_selection_flags, fitted_classifier

EXAMPLES = """\
examples:
  skmll explain --labels labels/ cat dog sandal
  skmll explain --labels labels/ --k 1 --reuse entropy cat dog

Prints MLLZeroShotClassifier.explain(): each class's node and similarity, and per serving
expert its reuse loss and the heads it combines (named where the hub file declares
head_names). Reads the label directory only: no model is loaded."""


def register_subcommand(subparsers, parents):
    parser = subparsers.add_parser(
        "explain", parents=parents,
        description="Explain the selection for a task: nodes, experts, heads, coverage.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("classes", metavar="CLASS", nargs="+", help="class names")
    add_label_dir_flags(parser)
    add_selection_flags(parser)
    parser.set_defaults(run=run)


def run(args):
    print(fitted_classifier(args, args.classes, on_uncovered="drop").explain())
    return 0
