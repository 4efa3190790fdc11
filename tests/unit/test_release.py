"""One version: the package's, the images' OCI label default, `--version`, the CHANGELOG's newest release and the
licence files a release carries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from semseg import __version__
from semseg.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_semantic_and_the_dockerfile_labels_it() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert f"ARG VERSION={__version__}\n" in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("argv", [["--version"], ["train", "--version"], ["serve", "--version"]])
def test_version_flags_print_the_package_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv, {}).code == 0
    assert capsys.readouterr().out == f"semseg {__version__}\n"


def test_the_changelog_has_a_section_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", changelog, re.MULTILINE)
    assert releases and releases[0][0] == __version__
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{__version__}]")


def test_licence_and_notice_are_apache_2() -> None:
    assert "Apache License\n                           Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()
    notice = (ROOT / "NOTICE").read_text()
    assert notice.startswith("semseg") and "Apache License, Version 2.0" in notice
