"""What the subcommands share: path checks, the selection flags, output writing."""

import argparse
import csv
import io
import json
import os
import re
from pathlib import Path

# C0 and C1 control characters: printed raw, they would drive the reader's terminal.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


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


def digest(text):
    """An argparse ``type``: a label directory digest, ``sha256:<64 hex digits>`` (the prefix
    may be left out)."""
    from ..labelling import DIGEST_PREFIX   # here: 'skmll --help' imports no torch

    value = text.strip().lower()
    value = value[len(DIGEST_PREFIX):] if value.startswith(DIGEST_PREFIX) else value
    if not _HEX_DIGEST.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected a digest {DIGEST_PREFIX}<64 hex digits>, as "
                                         f"'skmll label' and 'skmll info' print; got {text!r}")
    return DIGEST_PREFIX + value


def add_digest_flag(parser):
    """``--expect-digest DIGEST``: every command that reads a label directory takes it."""
    parser.add_argument("--expect-digest", metavar="DIGEST", type=digest,
                        help="refuse the label directory unless its content digest is this one "
                             "(the digest its publisher printed: 'skmll info' shows it)")


def add_label_dir_flags(parser):
    """``--labels DIR`` (a label directory that exists), ``--hub HUB.toml``, ``--trust-code
    DIR`` and ``--expect-digest DIGEST``."""
    parser.add_argument("--labels", metavar="DIR", required=True, type=existing_directory,
                        help="label directory written by 'skmll label'")
    parser.add_argument("--hub", metavar="HUB.toml", type=existing_file,
                        help="hub file of the experts (default: DIR/hub.toml); use this "
                             "machine's when its model paths differ. It is yours: its code runs")
    parser.add_argument("--trust-code", metavar="DIR", type=existing_directory,
                        help="let the hub file of the label directory DIR (the --labels one) "
                             "import and run code (torch:package.module:factory sources, a "
                             "module beside it): only for a directory whose author you trust")
    add_digest_flag(parser)


def check_digest(directory, expected):
    """Raise unless the label directory's digest is ``expected`` (None: nothing to check)."""
    if expected is None:
        return
    from ..labelling import label_dir_digest

    actual = label_dir_digest(directory)
    if actual != expected:
        raise ValueError(f"label directory {str(directory)!r} has digest {actual}, not the "
                         f"expected {expected}: its content is not what was published")


def trusts_code(args):
    """Whether ``--trust-code`` names the ``--labels`` directory (a usage error if another)."""
    if args.trust_code is None:
        return False
    if not os.path.samefile(args.trust_code, args.labels):
        raise UsageError(f"--trust-code {str(args.trust_code)!r} is not the label directory "
                         f"--labels {str(args.labels)!r}: consent names the directory it is for")
    return True


def open_label_dir(args):
    """The labeler of ``--labels`` (digest checked first, code trusted as the flags say)."""
    from ..labelling import load_label_dir

    check_digest(args.labels, args.expect_digest)
    return load_label_dir(args.labels, hub=args.hub, delta=args.delta,
                          trust_code=trusts_code(args))


def add_selection_flags(parser):
    """The :class:`~skmll.MLLZeroShotClassifier` and labeler parameters, named after them."""
    from ..baselines import SELECTION_METHODS   # here: 'skmll --help' imports no torch
    from ..reuse import REUSE_RULES

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
    group.add_argument("--max-cost", type=non_negative, default=None,
                       help="budget per image of the experts run, in --cost-unit (default: "
                            "none)")
    group.add_argument("--cost-unit", choices=["gflops", "ms"], default="gflops",
                       help="what --max-cost counts (default gflops)")
    group.add_argument("--selection", choices=list(SELECTION_METHODS), default="chco",
                       help="how experts are selected: CHCO or a baseline (default chco; "
                            "logme and leep run the experts on the SDAG's images, which a "
                            "label directory does not hold)")
    group.add_argument("--random-state", type=int, default=None,
                       help="seed of the baselines' draws (default: a fresh draw)")
    add_text_cache_flags(group)


def add_text_cache_flags(parser):
    """``--cache-dir PATH`` or ``--no-cache``: where class matching caches node embeddings."""
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", metavar="PATH", default=None,
                       help="where node text embeddings are cached (default: $SKMLL_CACHE_DIR "
                            "or ~/.cache/skmll)")
    cache.add_argument("--no-cache", dest="cache_dir", action="store_false",
                       help="cache no text embedding")


def add_device_flag(parser, what):
    parser.add_argument("--device", metavar="DEVICE", default=None,
                        help=f"where {what} run: cpu, cuda, cuda:1, ... (default: where each "
                             "expert's hub-file table says, the CPU unless it names a device)")


def as_json(document):
    return json.dumps(document, indent=2, ensure_ascii=False)


def as_csv(header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def printable(text):
    """``text`` with control characters (terminal escape codes among them) written as
    ``\\xNN``; line breaks are kept."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(text))


def write_output(path, text):
    """Write ``text`` to ``path`` atomically: the old file stays whole if the write fails."""
    from ..utils import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def as_table(header, rows):
    """Left-aligned columns for people to read (CSV and JSON are for programs); control
    characters escaped."""
    cells = [[printable(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in cells)
