"""``skmll zoo``: a label directory's labels stored for search (``DIR/zoo``), grown in place."""

import argparse
import warnings
from types import SimpleNamespace

from ._common import (
    add_digest_flag,
    add_text_cache_flags,
    as_json,
    check_digest,
    existing_directory,
    non_negative,
    positive_int,
    printable,
)
from ._fitting import stage
from ._reasons import UncoveredError, _unmatched, uncovered_message
from ._search import print_report, selection_report

EXAMPLES = """\
examples:
  skmll zoo update labels/                      # convert in place; later: add new experts
  skmll zoo search --labels labels/ cat dog sandal
  skmll zoo search --labels labels/ --k 1 --format json "ankle boot" sneaker
  skmll zoo info labels/ --verify

'update' stores the labels of the directory's experts in DIR/zoo, appending only the experts
the zoo lacks (a second run adds nothing), never rewriting what is stored: readers keep working
while it runs. 'search' matches class names to SDAG nodes as 'skmll search' does and reads from
the zoo only what the task needs; it selects the experts 'skmll search' selects with the same
--k and --beta, save where two losses tie to the stored labels' float16 precision. 'info' says
what the zoo holds; --verify checks every segment's SHA-256. Nothing is built and no code
runs: labels only."""

_NOT_SERVED = "label experts that serve them into the directory, then 'skmll zoo update'"


def register_subcommand(subparsers, parents):
    parser = subparsers.add_parser(
        "zoo", description="Store a label directory's labels for search over many experts, "
                           "grow them in place, and search them.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def add_verb(name, summary, description):
        return verbs.add_parser(name, parents=parents, help=summary, description=description,
                                epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)

    update = add_verb("update", "convert or extend DIR/zoo",
                      "Store the label directory's labels in DIR/zoo, adding the experts it "
                      "lacks as new segments.")
    update.add_argument("label_dir", metavar="DIR", type=existing_directory,
                        help="label directory written by 'skmll label'")
    update.add_argument("--segment-size", type=positive_int, default=4096,
                        help="most experts per segment file (default 4096)")
    update.add_argument("--max-dense", type=positive_int, default=None, metavar="HEADS",
                        help="when the zoo is created: keep only this many entries per node of "
                             "wider experts (less disk; selections may then differ from the "
                             "full labels'); default: every head")
    add_digest_flag(update)
    update.set_defaults(run=run_update)

    search = add_verb("search", "select experts from DIR/zoo",
                      "Match class names to SDAG nodes and select the experts of DIR/zoo that "
                      "would serve them.")
    search.add_argument("classes", metavar="CLASS", nargs="+", help="class names")
    search.add_argument("--labels", metavar="DIR", required=True, type=existing_directory,
                        help="label directory whose zoo 'skmll zoo update' wrote")
    search.add_argument("--k", type=positive_int, default=2, help="experts per class (default 2)")
    search.add_argument("--beta", type=non_negative, default=None,
                        help="largest reuse loss kept (default: any)")
    search.add_argument("--min-similarity", type=float, default=0.0,
                        help="class-node pairs less similar stay unmatched (default 0.0)")
    add_text_cache_flags(search)
    search.add_argument("--format", choices=["text", "json"], default="text")
    add_digest_flag(search)
    search.set_defaults(run=run_search)

    info = add_verb("info", "what DIR/zoo holds",
                    "Experts, segments, bytes and nodes of DIR/zoo.")
    info.add_argument("label_dir", metavar="DIR", type=existing_directory,
                      help="label directory whose zoo 'skmll zoo update' wrote")
    info.add_argument("--verify", action="store_true",
                      help="read every segment in full and check its SHA-256")
    info.add_argument("--format", choices=["text", "json"], default="text")
    add_digest_flag(info)
    info.set_defaults(run=run_info)


def run_update(args):
    from ..zoo import ZOO_FOLDER, update_zoo

    check_digest(args.label_dir, args.expect_digest)
    stage(args, f"reading the label directory {args.label_dir}")
    zoo, added = update_zoo(args.label_dir, segment_size=args.segment_size,
                            max_dense=args.max_dense, verbose=args.verbose)
    shown = ", ".join(added[:5]) + (", ..." if len(added) > 5 else "")
    print(printable(f"{args.label_dir / ZOO_FOLDER}: added {len(added)} expert(s)"
                    + (f" ({shown})" if added else "") + f"; {_summary(zoo)}"))
    return 0


def run_search(args):
    from ..labelling import read_sdag_manifest
    from ..selection import match_task
    from ..zoo import search_zoo

    check_digest(args.labels, args.expect_digest)
    zoo = _open_zoo(args.labels)
    pending = _pending(args.labels, zoo)
    if pending:
        warnings.warn(f"{len(pending)} expert(s) of the label directory are not in its zoo, so "
                      f"the search leaves them out: run 'skmll zoo update {args.labels}'",
                      UserWarning, stacklevel=2)
    sdag = read_sdag_manifest(args.labels)
    stage(args, f"matching {len(args.classes)} class name(s) to {sdag.n_nodes} SDAG nodes "
                f"(text encoder) and searching {zoo.n_experts} experts")
    task = match_task(args.classes, sdag, min_similarity=args.min_similarity,
                      cache_dir=args.cache_dir, verbose=args.verbose)
    selection = search_zoo(zoo, task, k=args.k, beta=args.beta)
    reasons = _reasons(task, selection, args)
    if len(reasons) == len(args.classes):
        raise UncoveredError(uncovered_message(reasons, len(args.classes), _NOT_SERVED))
    report = selection_report(_as_fitted(task, selection), args.classes, reasons)
    if args.format == "json":
        print(as_json(report))
    else:
        print_report(report, reasons)
    return 0


def run_info(args):
    check_digest(args.label_dir, args.expect_digest)
    zoo = _open_zoo(args.label_dir)
    if args.verify:
        zoo.verify()
    pending = _pending(args.label_dir, zoo)
    described = {"zoo": str(zoo.root), "n_experts": zoo.n_experts,
                 "n_segments": len(zoo.segments), "bytes": _bytes(zoo),
                 "n_nodes": len(zoo.node_ids), "max_dense_heads": zoo.manifest["max_dense_heads"],
                 "not_in_zoo": pending, "verified": args.verify}
    if args.format == "json":
        print(as_json(described))
        return 0
    print(printable(f"{described['zoo']}: {_summary(zoo)}"
                    + (", every segment's SHA-256 verified" if args.verify else "")))
    if pending:
        print(printable(f"{len(pending)} expert(s) of the label directory are not in the zoo "
                        f"yet: run 'skmll zoo update {args.label_dir}'"))
    return 0


def _bytes(zoo):
    return sum(segment.entry["bytes"] for segment in zoo.segments)


def _summary(zoo):
    return (f"{zoo.n_experts} expert(s) in {len(zoo.segments)} segment(s), {_bytes(zoo)} "
            f"bytes, {len(zoo.node_ids)} nodes")


def _open_zoo(label_dir):
    from ..zoo import ZOO_FOLDER, ZooStore
    from ..zoo._store import MANIFEST

    if not (label_dir / ZOO_FOLDER / MANIFEST).is_file():
        raise FileNotFoundError(f"label directory {str(label_dir)!r} has no zoo: convert it "
                                f"first with 'skmll zoo update {label_dir}'")
    return ZooStore(label_dir / ZOO_FOLDER)


def _pending(label_dir, zoo):
    """The experts of the directory's hub file that the zoo lacks (a search leaves them out).
    The hub file is read as data: no expert's code is imported."""
    from ..labelling import open_hub

    stored = set(zoo.names)
    return [name for name in open_hub(label_dir).names if name not in stored]


def _reasons(task, selection, args):
    """``{class: reason}`` for every class the search gives no expert, in the classes' order."""
    reasons = {}
    for c, match in task.matched_nodes.items():
        if selection.experts[c]:
            continue
        if c in task.unmatched_reasons:
            reasons[c] = f"not matched: {task.unmatched_reasons[c]}"
        elif match is None:
            reasons[c] = _unmatched(args)
        elif args.beta is not None:
            reasons[c] = (f"matched node {match[0]}, but no expert of the zoo has a reuse loss "
                          f"under --beta {args.beta}")
        else:
            reasons[c] = (f"matched node {match[0]}, but no expert of the zoo has a usable label "
                          "there")
    return reasons


def _as_fitted(task, selection):
    """The attributes :func:`selection_report` reads from a fitted classifier, from a search
    (no general model: a class is served by experts or not at all)."""
    covered = [c for c in task.classes if selection.experts[c]]
    return SimpleNamespace(matched_nodes_=task.matched_nodes, experts_=selection.experts,
                           covered_classes_=covered, uncovered_classes_=[],
                           coverage_=len(covered) / len(task.classes),
                           n_models_used_=len(selection.used))
