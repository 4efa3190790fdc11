"""A job's outputs are its own. When /opt/ml is reused (`docker run -v /data/ml:/opt/ml` twice; SageMaker always starts
empty), what an earlier job left in the model folder (its weights, symbol file, exports and hyperparams.json), in
output/data (evaluation.json) and its failure file are moved aside, with a warning, before this job writes anything:
into previous-<UTC time>/ in the same folder, so nothing is deleted and no earlier file can pass as this job's.
Earlier previous-* folders stay. A resumed job takes its best weights from the checkpoint folder, not from here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from semseg.contract.files import PREVIOUS, move_aside
from semseg.contract.job import JobPaths

log = logging.getLogger(__name__)


def set_aside_earlier_outputs(paths: JobPaths) -> None:
    """Move an earlier job's files out of the model folder, output/data and the failure file's folder."""
    for folder in (paths.model_dir, paths.output_data_dir):
        _set_aside(folder, [p for p in _entries(folder) if not p.name.startswith(PREVIOUS)])
    if paths.failure_file.is_file():
        _set_aside(paths.failure_file.parent, [paths.failure_file])


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _set_aside(folder: Path, earlier: list[Path]) -> None:
    if not earlier:
        return
    try:
        target = move_aside(folder, earlier)
    except OSError as exc:
        log.warning(
            "Could not move an earlier job's files out of %s (%s): they may be taken for this job's", folder, exc
        )
        return
    log.warning(
        "%s holds an earlier job's files (%s): moved aside to %s so that this job's outputs are its own",
        folder, ", ".join(p.name for p in earlier), target,
    )  # fmt: skip
