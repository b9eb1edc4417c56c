"""``skmll explain``: the classifier's account of its selection, heads included."""

import argparse

from ._common import printable
from ._fitting import add_classifier_flags, fitted_classifier
from ._reasons import SERVE_HINT, uncovered_reasons

# the line MLLZeroShotClassifier.explain() writes under a dropped class, in Python's terms
_DROPPED = "    dropped (on_uncovered='drop')"

EXAMPLES = """\
examples:
  skmll explain --labels labels/ cat dog sandal
  skmll explain --labels labels/ --k 1 --reuse entropy cat dog

Prints MLLZeroShotClassifier.explain(): each class's node and similarity, and per serving
expert its reuse loss and the heads it combines (named where the hub file declares
head_names), and for every class no expert serves, why (unmatched name, no usable label,
no expert under --beta, over --max-cost). Reads the label directory only: no expert is loaded
(the general model is, when one is named)."""


def register_subcommand(subparsers, parents):
    parser = subparsers.add_parser(
        "explain", parents=parents,
        description="Explain the selection for a task: nodes, experts, heads, coverage.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("classes", metavar="CLASS", nargs="+", help="class names")
    add_classifier_flags(parser, "the selected experts and the general model would")
    parser.set_defaults(run=run)


def run(args):
    classifier = fitted_classifier(args, args.classes, on_uncovered="drop")
    print(printable(classifier.explain().replace(_DROPPED, "    not served")))
    reasons = uncovered_reasons(classifier, args)
    if reasons:
        print("classes no expert serves:")
        for name, why in reasons.items():
            print(printable(f"  {name!r}: {why}"))
    if classifier.dropped_classes_:
        print(f"{len(classifier.dropped_classes_)} class(es) not served: {SERVE_HINT}")
    return 0
