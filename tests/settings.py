"""Settings every test shares (no project import: the container tests' environment has none): the export off,
and config files of a fake /opt/ml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# No ONNX export (about 2 s and 130 MB per job) and no INT8 (its calibration and gate) after the many jobs that test
# something else: tests/functional/test_export.py turns them on, and the container tests run the image's defaults.
EXPORT_OFF = {"SEMSEG_EXPORT": "false", "SEMSEG_INT8": "false"}


def write_config(base: Path, name: str, content: Any) -> None:
    folder = base / "input" / "config"
    folder.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (folder / name).write_text(text)
