"""Parsing of single hyperparameter strings, as the SageMaker clients send them.

SDK v2 `Estimator` sends `str(v)` ("True", "1e-05"); SDK v2 framework estimators and SDK v3 send
`json.dumps(v)` ("true", "\\"resnet-50\\"", "[10, 20]"). Every parser here accepts both and raises
ValueError with a short reason; the caller adds the parameter's name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def normalize(raw: Any) -> str:
    """One hyperparameter value as a plain string: JSON scalars as text, one layer of quotes removed."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        return json.dumps(raw)
    if isinstance(raw, list):
        return ",".join(normalize(v) for v in raw)
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {type(raw).__name__} {raw!r}")
    text = raw.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded.strip()
    return text


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean; use True or False")


def parse_int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_int_list(text: str) -> tuple[int, ...]:
    """ "10, 20", "10,20" or "[10, 20]" -> (10, 20)."""
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    parts = [p.strip() for p in inner.split(",")]
    if not parts or any(p == "" for p in parts):
        raise ValueError(f'{text!r} is not a comma-separated list of integers, e.g. "10, 20"')
    return tuple(parse_int(p) for p in parts)


AUTO = "auto"


def parse_class_weights(text: str) -> str | tuple[float, ...]:
    """ "auto", or non-negative weights as "1, 1, 5, 5", "1,1,5,5" or "[1, 1, 5, 5]"; every bad entry is named."""
    if text.lower() == AUTO:
        return AUTO
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    parts = [part.strip() for part in inner.split(",")]
    if not inner.strip():
        raise ValueError(f'{text!r} is neither auto nor a list of numbers, one per class, e.g. "1, 1, 5, 5"')
    weights: list[float] = []
    problems: list[str] = []
    for i, part in enumerate(parts):
        try:
            value = parse_float(part)
        except ValueError:
            problems.append(f"entry {i} {part!r} is not a number")
            continue
        if value < 0:
            problems.append(f"entry {i} {part} is negative")
        weights.append(value)
    if problems:
        raise ValueError(", ".join(problems) + '; give auto or one non-negative number per class, e.g. "1, 1, 5, 5"')
    if not any(weights):
        raise ValueError(f"{text!r} gives every class the weight 0; at least one class needs a positive weight")
    return tuple(weights)


class Choice:
    """A parser that accepts one of `options` (case-insensitive) and returns it in canonical case."""

    def __init__(self, options: Sequence[str]) -> None:
        self.options = tuple(options)

    def __call__(self, text: str) -> str:
        lowered = text.lower()
        for option in self.options:
            if option.lower() == lowered:
                return option
        raise ValueError(f"{text!r} is not one of {', '.join(self.options)}")

    def describe(self) -> str:
        return ", ".join(f"`{option}`" for option in self.options)


def choice(options: Sequence[str]) -> Choice:
    return Choice(options)


class Range:
    """A check that returns the allowed range as text when the value is outside it, else None."""

    def __init__(self, lo: float | None, hi: float | None, *, lo_open: bool = False, hi_open: bool = False) -> None:
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def describe(self) -> str:
        """The range as the README's table writes it: `2 <= value <= 254`."""
        parts = []
        if self.lo is not None:
            parts.append(f"{_fmt(self.lo)} {'<' if self.lo_open else '<='} ")
        parts.append("value")
        if self.hi is not None:
            parts.append(f" {'<' if self.hi_open else '<='} {_fmt(self.hi)}")
        return "".join(parts)

    def __call__(self, value: float) -> str | None:
        lo, hi = self.lo, self.hi
        if lo is not None and (value < lo or (self.lo_open and value == lo)):
            return self.describe()
        if hi is not None and (value > hi or (self.hi_open and value == hi)):
            return self.describe()
        return None


def in_range(lo: float | None, hi: float | None, *, lo_open: bool = False, hi_open: bool = False) -> Range:
    return Range(lo, hi, lo_open=lo_open, hi_open=hi_open)


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)
