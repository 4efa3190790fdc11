"""docker/licenses.py, which every image's build runs: a distribution is listed with its licence, and the build
fails on one whose licence cannot be told or forbids commercial use (a generated distribution on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "licenses.py"


def run(tmp_path: Path, metadata: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    info = site / "fakedist-1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakedist\nVersion: 1.2\n{metadata}")
    (info / "RECORD").write_text("")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = tmp_path / "THIRD_PARTY_LICENSES"
    return subprocess.run([sys.executable, str(SCRIPT), str(out), "--store", str(tmp_path / "store")],
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip


def test_a_distribution_is_listed_with_its_licence(tmp_path: Path) -> None:
    done = run(tmp_path, "License-Expression: MIT\n")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "THIRD_PARTY_LICENSES").read_text()
    assert "fakedist==1.2\tMIT\n" in text and "No pretrained weights in" in text


@pytest.mark.parametrize(
    "metadata, reason",
    [
        ("", "no licence in its metadata or files"),
        ("License: CC-BY-NC-4.0\n", "its licence forbids commercial use (CC-BY-NC-4.0)"),
    ],
)
def test_an_unknown_or_non_commercial_licence_fails_the_build(tmp_path: Path, metadata: str, reason: str) -> None:
    done = run(tmp_path, metadata)
    assert done.returncode == 1 and f"fakedist 1.2: {reason}" in done.stderr
    assert not (tmp_path / "THIRD_PARTY_LICENSES").exists()
