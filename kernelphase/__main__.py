"""``python -m kernelphase``: the same as the ``kernelphase`` console script."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
