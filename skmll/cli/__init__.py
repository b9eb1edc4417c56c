"""The ``skmll`` command line: label a hub once, then select and predict from the labels.

``skmll label`` pre-tests a hub file's experts on a folder of synset images and writes a label
directory; ``skmll search``, ``predict``, ``explain`` and ``info`` work from that directory
alone, on any machine: no image is read and only the experts selected for a task are built
(``predict``). ``skmll zoo`` stores a directory's labels for search over many experts and
grows them in place. ``skmll hub declare`` writes a hub file's missing declarations. Each
subcommand is one module here, a thin layer over the library
(:func:`skmll.labelling.load_label_dir`, :class:`skmll.MLLZeroShotClassifier`).

Exit codes: 0 success; 1 the command failed (an expert failed, labels are missing, no class
can be served, ``info`` found a problem); 2 the command line is wrong (unknown flag, bad value,
a file or directory that does not exist); 130 interrupted. Errors are one line on stderr.
"""

import argparse
import importlib
import logging
import sys
import traceback
import warnings

from .._version import __version__
from ._common import Parser, UsageError, printable

# Each subcommand: its module (imported only when the subcommand is run or documented, so that
# ``skmll --help`` and ``--version`` answer without importing torch) and its line in --help.
SUBCOMMANDS = {
    "label": ("_label", "label a hub on a folder of synset images"),
    "search": ("_search", "match classes to nodes and experts (loads no model)"),
    "predict": ("_predict", "classify images (builds only the selected experts)"),
    "explain": ("_explain", "explain which experts and heads serve each class"),
    "info": ("_info", "what a label directory holds (loads no model)"),
    "hub": ("_hub", "work on a hub file: write its missing declarations"),
    "paper": ("_paper", "the paper's experiment (Table 1) and a check of its hub"),
    "zoo": ("_zoo", "labels stored for search over many experts: update, search, info"),
}
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXAMPLES = """\
walk-through:
  skmll label hub.toml --images imagenet/train --labels labels/   # once, where the images are
  cp -r labels/ /elsewhere/labels/                                 # share one directory
  skmll search --labels /elsewhere/labels cat dog                  # no model loaded
  skmll predict --labels /elsewhere/labels --classes cat dog -- photos/
  skmll explain --labels /elsewhere/labels cat dog
  skmll info --labels /elsewhere/labels --verify
  skmll zoo update /elsewhere/labels                               # labels stored for search
  skmll zoo search --labels /elsewhere/labels cat dog              # reads what the task needs

exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.
'skmll COMMAND --help' shows each command's flags and examples."""


def build_parser(command=None):
    """The argument parser of ``skmll`` and its subcommands.

    Parameters
    ----------
    command : str or None
        The one subcommand whose module is imported and whose flags are parsed; the others
        are listed by name only ("" lists them all so). None builds every subcommand in full.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="progress bars on stderr (default: when stderr is a terminal); "
                             "-vv also logs progress messages and shows tracebacks")
    common.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars and no warnings")
    parser = Parser(prog="skmll", description="Zero-shot image classification by Model Label "
                    "Learning: label a hub once, then select and predict from the labels.",
                    epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"skmll {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_parser = subparsers.add_parser
    # every subcommand's line in --help comes from SUBCOMMANDS, imported or not
    subparsers.add_parser = lambda name, **kwargs: add_parser(
        name, **{**kwargs, "help": SUBCOMMANDS[name][1]})
    for name, (module, _) in SUBCOMMANDS.items():
        if command is None or name == command:
            importlib.import_module(f"{__name__}.{module}").register_subcommand(
                subparsers, [common])
        else:
            subparsers.add_parser(name)
    return parser


def main(argv=None):
    """Run ``skmll`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit code.

    Examples
    --------
    >>> from skmll.cli import main
    >>> main(["info", "--labels", "no/such/dir"])
    2
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(chosen if chosen in SUBCOMMANDS else "")
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _error(parser.prog, exc)
        return EXIT_USAGE
    verbosity = 0 if args.quiet else args.verbose or int(sys.stderr.isatty())
    args.verbose = verbosity
    prog = f"{parser.prog} {args.command}"
    if verbosity > 1:
        logging.basicConfig(level=logging.INFO, format=f"{prog}: %(message)s")
    with warnings.catch_warnings():
        if args.quiet:
            warnings.simplefilter("ignore")
        else:   # one line each, like the errors
            warnings.showwarning = _warning_printer(prog)
        return _run(args, prog)


def _run(args, prog):
    try:
        return args.run(args)
    except UsageError as exc:
        _error(prog, exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error(prog, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:   # any failure is reported as one line, with its kind
        if args.verbose > 1:
            traceback.print_exc()
        _error(prog, f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE


def _error(prog, message):
    print(f"{prog}: error: {_one_line(message)}", file=sys.stderr)


def _one_line(message):
    return printable(" ".join(str(message).split()))


def _warning_printer(prog):
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: {category.__name__}: {_one_line(message)}", file=file or sys.stderr)
    return show
