"""`python -m semseg train` is the same as the `train` console script."""

from semseg.cli import run

run()
