"""``python -m skmll``: the ``skmll`` command line (see :mod:`skmll.cli`)."""

from skmll.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
