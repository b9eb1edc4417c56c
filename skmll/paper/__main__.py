"""``python -m skmll.paper ...`` is ``skmll paper ...``."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["paper", *sys.argv[1:]]))
