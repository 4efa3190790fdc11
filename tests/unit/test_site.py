"""The manual as a user meets it: the built site's search finds what a first day needs, the site fetches nothing
from the internet, every long page has sections, and the README shows a picture that is in the repository."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT, check=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return out


def test_the_search_finds_a_first_days_words(site: Path) -> None:
    docs = json.loads((site / "search" / "search_index.json").read_text())["docs"]
    text = " ".join(doc["title"] + " " + doc["text"] for doc in docs)
    for needle in ("docker push", "lr_scheduler_factor", "validation:mIOU", "InferenceAmiVersion", "exec format error"):
        assert needle in text, needle
    assert (site / "troubleshooting" / "index.html").is_file()


def test_the_site_fetches_nothing_from_the_internet(site: Path) -> None:
    for page in site.rglob("*.html"):
        html = page.read_text()
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html, page
        assert not re.findall(r'<script[^>]+src="https?://', html), page
        assert not re.findall(r'<link[^>]+href="https?://[^"]+\.css', html), page


def test_every_long_page_has_sections() -> None:
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        if len(text.splitlines()) > 40:
            assert re.search(r"^## ", text, re.MULTILINE), f"{page.name} has no sections"


def test_the_readme_shows_a_picture_of_the_repository() -> None:
    pictures = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert pictures and all((ROOT / picture).is_file() for picture in pictures)
