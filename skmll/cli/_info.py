"""``skmll info``: what a label directory holds, and whether it can serve its hub."""

import argparse
import warnings
from dataclasses import asdict

from ..labelling import LabelStore, expert_statuses, label_dir_digest, read_sdag_manifest
from ..labelling import HUB_FILE, SDAG_MANIFEST, STORE_FOLDER, open_hub
from ._common import (
    add_label_dir_flags,
    as_json,
    as_table,
    check_digest,
    printable,
    trusts_code,
)

EXAMPLES = """\
examples:
  skmll info --labels labels/
  skmll info --labels labels/ --verify --format json

Lists the SDAG (nodes, images), each expert of the hub file with its record's status and size,
and the records no expert of the hub uses. Status "ok": every node with images is labelled;
"incomplete" or "missing": run 'skmll label' into the directory; "undeclared": the hub file
lacks the expert's n_outputs or fingerprint. --verify also reads every record in full
(checksums, keys, values) and checks that every expert could be built here, without building
it: its model files exist, and its code (a torch:package.module:factory source) may run
(--trust-code DIR) and can be imported. The exit code is 1 unless every expert (and, with
--verify, every record) is ok. Loads no model.

The digest is SHA-256 over a listing of every file in DIR (lock and temporary files aside) with
the SHA-256 of its bytes: publish it beside the directory, and readers check it with
--expect-digest on any command."""


def register_subcommand(subparsers, parents):
    parser = subparsers.add_parser(
        "info", parents=parents,
        description="Describe a label directory: SDAG, experts, records, sizes, status.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_label_dir_flags(parser)
    parser.add_argument("--verify", action="store_true",
                        help="read and check every record in full")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.set_defaults(run=run)


def describe(directory, hub_file=None, *, verify=False, trust_code=False):
    """The label directory as a JSON-ready dict (``skmll info``)."""
    sdag = read_sdag_manifest(directory)
    hub = open_hub(directory, hub_file, trust_code=trust_code)
    experts = expert_statuses(directory, sdag, hub, resolve=verify)
    store = LabelStore(directory / STORE_FOLDER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # reported below, one row per record
        records = store.verify() if verify else store.scan()
    used = {expert.key for expert in experts}
    bad_records = [r for r in records if r.status != "ok"]
    ok = all(e.status == "ok" and e.unresolved is None for e in experts) and not bad_records
    return {
        "directory": str(directory),
        "digest": label_dir_digest(directory),
        "status": "ok" if ok else "not ok",
        "sdag": {"n_nodes": sdag.n_nodes, "n_edges": len(sdag.edges),
                 "n_nodes_with_images": int((sdag.n_images > 0).sum()),
                 "n_images": int(sdag.n_images.sum()), "image_size": sdag.image_size},
        "experts": [{**asdict(e), "missing_nodes": list(e.missing_nodes)} for e in experts],
        "records": {"n_records": len(records), "size": sum(r.size for r in records),
                    "unused": [r.key for r in records if r.key not in used],
                    "not_ok": [{"key": r.key, "status": r.status, "reason": r.reason}
                               for r in bad_records],
                    "verified": verify},
        "files": {"manifest": SDAG_MANIFEST, "hub": HUB_FILE, "store": STORE_FOLDER},
    }


def run(args):
    check_digest(args.labels, args.expect_digest)
    info = describe(args.labels, args.hub, verify=args.verify, trust_code=trusts_code(args))
    if args.format == "json":
        print(as_json(info))
    else:
        sdag, records = info["sdag"], info["records"]
        print(printable(f"label directory {info['directory']}: {info['status']}"))
        print(f"digest {info['digest']}")
        print(f"SDAG: {sdag['n_nodes']} nodes, {sdag['n_edges']} edges, "
              f"{sdag['n_nodes_with_images']} with {sdag['n_images']} images")
        print(as_table(["expert", "status", "labelled nodes", "outputs", "bytes", "source"],
                       [(e["expert"], e["status"], e["n_labelled"], e["n_outputs"], e["size"],
                         e["source"]) for e in info["experts"]]))
        print(f"{records['n_records']} record(s), {records['size']} bytes, "
              f"{len(records['unused'])} not used by the hub"
              + (", all verified" if records["verified"] and not records["not_ok"] else ""))
        for record in records["not_ok"]:
            print(printable(f"record {record['key']}: {record['status']}: {record['reason']}"))
        for expert in info["experts"]:
            if expert["unresolved"]:
                print(printable(f"expert {expert['expert']} cannot be built here: "
                                f"{expert['unresolved']}"))
    return 0 if info["status"] == "ok" else 1
