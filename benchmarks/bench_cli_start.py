"""How long ``skmll --version`` and ``skmll --help`` take, against a baseline checkout.

Each command runs as ``python -m skmll ...`` in a fresh process with ``PYTHONPATH`` set to this
checkout, then to the baseline's (an older checkout, e.g. from
``git archive <commit> | tar -x -C ../old``), interleaved, ``--repeats`` times; the medians of wall time are printed with
``ratio = baseline / this`` (the goal: the command answers without importing torch or
scikit-learn, so well under a second). ``--imports`` also lists which of torch, sklearn and
numpy each side's ``--version`` imports (``python -X importtime``).
Usage: python benchmarks/bench_cli_start.py --baseline ../old [--repeats 5] [--imports]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
COMMANDS = (["--version"], ["--help"])
HEAVY = ("torch", "sklearn", "numpy")


def run(checkout, arguments, *extra):
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    # run from the checkout: "python -m" puts the working folder first on the path
    done = subprocess.run([sys.executable, *extra, "-m", "skmll", *arguments], env=env,
                          cwd=checkout, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done


def heavy_imports(checkout):
    _, done = run(checkout, ["--version"], "-X", "importtime")
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    return sorted(m for m in HEAVY if m in imported)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="an older checkout")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--imports", action="store_true")
    args = parser.parse_args()
    sides = {"this": HERE, "baseline": args.baseline.resolve()}
    print(f"{'command':<18}{'baseline s':>12}{'this s':>10}{'ratio':>8}")
    for arguments in COMMANDS:
        times = {side: [] for side in sides}
        for _ in range(args.repeats):
            for side, checkout in sides.items():
                times[side].append(run(checkout, arguments)[0])
        this, base = (statistics.median(times[side]) for side in ("this", "baseline"))
        print(f"{'skmll ' + ' '.join(arguments):<18}{base:>12.2f}{this:>10.2f}"
              f"{base / this:>8.1f}")
    if args.imports:
        for side, checkout in sides.items():
            print(f"{side}: --version imports {heavy_imports(checkout) or 'none'} of {HEAVY}")


if __name__ == "__main__":
    main()
