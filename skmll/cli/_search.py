"""``skmll search``: which node each class matches and which experts would serve it."""

import argparse

from ._common import as_json, as_table
from ._fitting import add_classifier_flags, fitted_classifier
from ._reasons import SERVE_HINT, uncovered_reasons

EXAMPLES = """\
examples:
  skmll search --labels labels/ cat dog sandal
  skmll search --labels labels/ --k 1 --format json "ankle boot" sneaker

Reads the label directory only: no image, no expert is loaded (the general model is, when
one is named). Classes no expert serves are listed with the reason; the exit code is 1 when no
class is served."""


def register_subcommand(subparsers, parents):
    parser = subparsers.add_parser(
        "search", parents=parents,
        description="Match class names to SDAG nodes and select the experts that would serve "
                    "them, from the label directory alone.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("classes", metavar="CLASS", nargs="+", help="class names")
    add_classifier_flags(parser, "the selected experts and the general model would")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.set_defaults(run=run)


def selection_report(classifier, classes, reasons):
    """Per class (in the order given): node, similarity, serving experts or why none (from
    ``reasons``) and who serves it; then coverage."""
    report = []
    for name in classes:
        match = classifier.matched_nodes_[name]
        report.append({
            "class": name,
            "node": match[0] if match else None,
            "similarity": match[1] if match else None,
            "experts": [{"name": expert, "loss": loss}
                        for expert, loss, _ in classifier.experts_[name]],
            "covered": name in classifier.covered_classes_,
            "served_by": ("experts" if name in classifier.covered_classes_ else
                          "general model" if name in classifier.uncovered_classes_ else None),
            "reason": reasons.get(name),
        })
    return {"classes": report, "coverage": classifier.coverage_,
            "n_models_used": classifier.n_models_used_}


def run(args):
    classifier = fitted_classifier(args, args.classes, on_uncovered="drop")
    reasons = uncovered_reasons(classifier, args)
    report = selection_report(classifier, args.classes, reasons)
    if args.format == "json":
        print(as_json(report))
        return 0
    print_report(report, reasons)
    if classifier.dropped_classes_:
        print(f"{len(classifier.dropped_classes_)} class(es) not served: {SERVE_HINT}")
    return 0


def print_report(report, reasons):
    """:func:`selection_report` as a table, its coverage and why classes have no expert."""
    rows = []
    for entry in report["classes"]:
        experts = ", ".join(f"{e['name']} ({e['loss']:.3f})" for e in entry["experts"])
        rows.append((entry["class"], entry["node"] or "-",
                     "-" if entry["similarity"] is None else f"{entry['similarity']:.2f}",
                     experts or f"none: {entry['served_by'] or 'not served'}"))
    print(as_table(["class", "node", "similarity", "experts (reuse loss)"], rows))
    n_covered = sum(entry["covered"] for entry in report["classes"])
    print(f"coverage {report['coverage']:.0%} ({n_covered} of {len(rows)} classes), "
          f"{report['n_models_used']} expert(s) used")
    for name, why in reasons.items():
        print(f"{name!r} has no expert: {why}")
