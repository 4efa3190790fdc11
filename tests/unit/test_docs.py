"""The tables a user reads are the code's: docs/hyperparameters.md's table against the hyperparameters'
specification and defaults (both columns) (semseg.contract.config), docs/settings.md against the settings table
(semseg.contract.options): the same names, defaults and valid values, so neither can drift."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from semseg.contract.config import MANAGED_2020, SPECS, Config
from semseg.contract.options import SERVING_SETTINGS, SETTINGS, TRAINING_SETTINGS, WEIGHTS_SETTINGS, Setting
from semseg.engines import ENGINES

ROOT = Path(__file__).resolve().parents[2]


def table(text: str, header: str) -> dict[str, list[str]]:
    """The rows of the Markdown table under the header row starting with `header`: first cell (without its
    backticks) -> the other cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def section(text: str, heading: str) -> str:
    """The text of the section `heading` (up to the next heading of its level)."""
    level = heading.split(" ")[0]
    start = text.index(f"\n{heading}\n")
    end = text.find(f"\n{level} ", start + 1)
    return text[start : end if end > 0 else None]


def documented_default(name: str) -> str:
    field = next(f for f in dataclasses.fields(Config) if f.name == name)
    if SPECS[name].required:
        return "required"
    value = field.default
    if value is None or value == ():
        return "unset"
    if isinstance(value, (bool, str)):
        return f"`{value}`"
    return str(value)


HYPERPARAMETERS = table((ROOT / "docs" / "hyperparameters.md").read_text(), "name")


def test_the_readme_lists_every_hyperparameter_and_no_other() -> None:
    assert list(HYPERPARAMETERS) and set(HYPERPARAMETERS) == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_hyperparameter_has_its_defaults_and_valid_values_in_the_manual(name: str) -> None:
    default, managed, valid = HYPERPARAMETERS[name][:3]
    assert default == documented_default(name)
    assert managed == MANAGED_2020.get(name, managed), "the managed algorithm's default of today"
    assert valid == SPECS[name].valid


SETTINGS_PAGE = (ROOT / "docs" / "settings.md").read_text()
DOCUMENTED = {
    "training": table(section(SETTINGS_PAGE, "## Training"), "variable"),
    "serving": table(section(SETTINGS_PAGE, "## Serving"), "variable"),
    "weights": table(section(SETTINGS_PAGE, "## Building an image: the weights"), "variable"),
}
GROUPS = {"training": TRAINING_SETTINGS, "serving": SERVING_SETTINGS, "weights": WEIGHTS_SETTINGS}


def test_the_settings_page_lists_every_setting_where_it_belongs() -> None:
    for group, settings in GROUPS.items():
        assert set(DOCUMENTED[group]) == set(settings), group


def valid(setting: Setting) -> str:
    """SEMSEG_ENGINE's values are the registry's engines; the others are the setting's own."""
    if setting.name == "SEMSEG_ENGINE":
        return ", ".join(f"`{name}`" for name in ENGINES)
    return setting.valid()


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_setting_has_its_default_and_valid_values_on_the_settings_page(name: str) -> None:
    where = next(group for group, settings in GROUPS.items() if name in settings)
    default, valid_values = DOCUMENTED[where][name][:2]
    assert default == SETTINGS[name].documented_default()
    assert valid_values == valid(SETTINGS[name])


def test_the_table_reader_reads_a_table() -> None:
    text = "| name | default |\n|---|---|\n| `a` | 1 |\n| b | `x` |\n\nafter"
    assert table(text, "name") == {"a": ["1"], "b": ["`x`"]}
