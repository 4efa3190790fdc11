"""`python -m semseg.prepare ...`: the same as `semseg-prepare ...`."""

from semseg.prepare.cli import run

run()
