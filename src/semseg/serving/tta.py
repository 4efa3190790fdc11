"""Test-time augmentation of the server's predictions, for any engine's predictor (a semseg.engines
Predictor: one pass within the pixel budget, else windows).

Asked per request with SageMaker's custom attributes header (`X-Amzn-SageMaker-Custom-Attributes`, which
real-time endpoints forward), `;`-separated, with defaults for every request from SEMSEG_TTA (batch transform
cannot set headers); a request's attributes replace the defaults they name:
- `tta=flip` averages the softmax probabilities of the image and of its left-right mirror (mirrored back);
  `tta=none` turns it off;
- `scales=0.75,1,1.25` averages over copies of the image resized by each factor (bilinear), each one's
  probabilities resized back to the image (bilinear); with `tta=flip`, every scale is also mirrored.
Each copy is predicted as any image is (windows above the pixel budget). The answer is the mean of the copies'
probabilities; the class PNG is its argmax. Without attributes the predictor answers alone, unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from semseg.engines import Predictor

HEADER = "X-Amzn-SageMaker-Custom-Attributes"
ENV = "SEMSEG_TTA"
MIN_SCALE, MAX_SCALE, MAX_SCALES = 0.25, 4.0, 8
MIN_SIDE = 16  # a scaled copy is at least this many pixels on each side (the networks' output stride is 8)
_ATTRIBUTES = ("tta", "scales")
_SPLIT = re.compile(r";|,(?=\s*[A-Za-z_][\w-]*\s*=)")  # ";" or a comma that starts the next key=value


class BadAttributes(ValueError):
    """A custom attribute this server does not accept; the message names it and what is accepted."""


@dataclass(frozen=True)
class Augmentation:
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)

    @property
    def plain(self) -> bool:
        return not self.flip and self.scales == (1.0,)

    def describe(self) -> str:
        if self.plain:
            return "none"
        scales = ",".join(f"{s:g}" for s in self.scales)
        return f"tta={'flip' if self.flip else 'none'};scales={scales}"


PLAIN = Augmentation()


def parse(text: str | None, default: Augmentation = PLAIN, where: str = HEADER) -> Augmentation:
    """The augmentation of `text` ("tta=flip;scales=0.75,1,1.25"), over `default`; BadAttributes naming the
    attribute and what is accepted (`where` says where the text came from)."""
    result = default
    for part in _SPLIT.split(text or ""):
        part = part.strip()
        if not part:
            continue
        key, sep, value = (s.strip() for s in part.partition("="))
        key = key.lower()
        if not sep or key not in _ATTRIBUTES:
            raise BadAttributes(
                f"{where}: {part!r} is not an attribute this server reads; it accepts tta=flip (or tta=none) and "
                f"scales=<factors between {MIN_SCALE:g} and {MAX_SCALE:g}, e.g. 0.75,1,1.25>, separated by ';'"
            )
        if key == "tta":
            if value.lower() not in ("flip", "none"):
                raise BadAttributes(f"{where}: tta={value!r} is not accepted; use tta=flip or tta=none")
            result = replace(result, flip=value.lower() == "flip")
        else:
            result = replace(result, scales=_parse_scales(value, where))
    return result


def _parse_scales(value: str, where: str) -> tuple[float, ...]:
    expected = (
        f"use up to {MAX_SCALES} different factors between {MIN_SCALE:g} and {MAX_SCALE:g}, comma-separated, "
        "e.g. scales=0.75,1,1.25"
    )
    try:
        scales = tuple(float(s) for s in value.split(","))
    except ValueError:
        raise BadAttributes(f"{where}: scales={value!r} is not a list of numbers; {expected}") from None
    if not scales or len(scales) > MAX_SCALES or len(set(scales)) != len(scales):
        raise BadAttributes(f"{where}: scales={value!r}: {expected}")
    if any(not MIN_SCALE <= s <= MAX_SCALE for s in scales):
        raise BadAttributes(f"{where}: scales={value!r} has a factor out of range; {expected}")
    return scales


def probabilities(predictor: Predictor, image: np.ndarray, augmentation: Augmentation) -> np.ndarray:
    """[C, H, W] float32: the mean of the copies' class probabilities (the predictor's own when plain)."""
    if augmentation.plain:
        return predictor.probabilities(image)
    height, width = image.shape[:2]
    total: np.ndarray | None = None
    copies = 0
    for scale in augmentation.scales:
        scaled = _resized_image(image, scale)
        for mirrored in (False, True) if augmentation.flip else (False,):
            source = np.ascontiguousarray(scaled[:, ::-1]) if mirrored else scaled
            scores = predictor.probabilities(source)
            if mirrored:
                scores = scores[:, :, ::-1]
            scores = _resized_scores(scores, height, width)
            total = scores.copy() if total is None else total + scores
            copies += 1
    assert total is not None
    return total / np.float32(copies)


def classes(predictor: Predictor, image: np.ndarray, augmentation: Augmentation) -> np.ndarray:
    """HxW uint8 class ids: the argmax of `probabilities`; a flip alone goes band by band (as the plain
    prediction does), so its memory stays that of the predictor's."""
    if augmentation.plain:
        return predictor.classes(image)
    if augmentation.scales != (1.0,):
        return probabilities(predictor, image, augmentation).argmax(axis=0).astype(np.uint8)
    out = np.empty(image.shape[:2], dtype=np.uint8)
    mirror = np.ascontiguousarray(image[:, ::-1])
    for (y, band), (_, mirrored) in zip(predictor.bands(image), predictor.bands(mirror)):
        out[y : y + band.shape[1]] = (band + mirrored[:, :, ::-1]).argmax(axis=0)
    return out


def _resized_image(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    import cv2  # here: the server's parent reads the attributes' defaults and loads no image library

    height, width = image.shape[:2]
    size = (max(MIN_SIDE, round(width * scale)), max(MIN_SIDE, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _resized_scores(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """[C, h, w] -> [C, height, width] float32, bilinear, one class at a time (OpenCV's channel limit)."""
    if scores.shape[1:] == (height, width):
        return np.ascontiguousarray(scores, dtype=np.float32)
    import cv2

    out = np.empty((scores.shape[0], height, width), dtype=np.float32)
    for c in range(scores.shape[0]):
        out[c] = cv2.resize(np.ascontiguousarray(scores[c]), (width, height), interpolation=cv2.INTER_LINEAR)
    return out
