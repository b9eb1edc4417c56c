"""``skmll hub declare``: write a hub file with every expert's declarations filled in."""

import argparse
from pathlib import Path

from ._common import existing_file

EXAMPLES = """\
examples:
  skmll hub declare my-hub.toml                  # declares in place
  skmll hub declare my-hub.toml -o declared.toml

Builds each expert of the hub file that lacks n_outputs or fingerprint once (one at a time,
released after), and writes the hub file with both declared for every expert, as
ModelHub.to_toml(path, declare_missing=True) does. With them declared, labelling reads stored
labels without building a model, and search and explain build none."""


def register_subcommand(subparsers, parents):
    parser = subparsers.add_parser(
        "hub", description="Work on a hub file.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="hub_command", metavar="HUB_COMMAND", required=True)
    declare = commands.add_parser(
        "declare", parents=parents, help="write the hub file's missing declarations",
        description="Write IN.toml (or OUT.toml) with every expert's n_outputs and fingerprint "
                    "declared, building only the experts that lack them.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    declare.add_argument("hub", metavar="IN.toml", type=existing_file, help="the hub file")
    declare.add_argument("-o", "--out", metavar="OUT.toml", type=Path, default=None,
                         help="where to write (default: IN.toml itself)")
    declare.set_defaults(run=run_declare)


def run_declare(args):
    from ..hub import ModelHub

    hub = ModelHub.from_toml(args.hub)
    undeclared = [expert.name for expert in hub
                  if None in (expert.declared("n_outputs"), expert.declared("fingerprint"))]
    out = args.out or args.hub
    hub.to_toml(out, declare_missing=True)
    built = ", ".join(undeclared) if undeclared else "none (all were declared)"
    print(f"{out}: {len(hub)} expert(s) declared; built to declare: {built}")
    return 0

