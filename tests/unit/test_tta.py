"""Test-time augmentation's attributes, read from the request header and SEMSEG_TTA, without any network: every
form the header may take, every bad one named (the server answers 400 with the message: tests/functional/test_tta.py),
and a bad SEMSEG_TTA stops `serve` with a ClientError."""

from __future__ import annotations

import pytest

from semseg.contract.errors import ClientError
from semseg.contract.options import ServeOptions
from semseg.engines import engine
from semseg.serving import tta
from semseg.serving.server import ServeSettings


@pytest.mark.parametrize(
    ("text", "flip", "scales"),
    [
        ("tta=flip", True, (1.0,)),
        ("TTA=Flip", True, (1.0,)),
        ("scales=0.75,1,1.25", False, (0.75, 1.0, 1.25)),
        ("tta=flip;scales=0.75,1,1.25", True, (0.75, 1.0, 1.25)),
        ("tta=flip, scales=0.75, 1, 1.25", True, (0.75, 1.0, 1.25)),
        (" scales = 2 ; tta = flip ; ", True, (2.0,)),
        ("", False, (1.0,)),
    ],
)
def test_attribute_forms(text: str, flip: bool, scales: tuple[float, ...]) -> None:
    assert tta.parse(text) == tta.Augmentation(flip, scales)


def test_a_bad_semseg_tta_stops_serve_with_a_client_error() -> None:
    def settings(environ: dict[str, str]) -> ServeSettings:
        return ServeSettings.of(ServeOptions.from_environ(environ), 0, 2, 10**6, engine("mxnet"))

    assert settings({"SEMSEG_TTA": "tta=flip;scales=0.75,1,1.25"}).augmentation == tta.Augmentation(
        True, (0.75, 1.0, 1.25)
    )
    with pytest.raises(ClientError, match="Environment variable SEMSEG_TTA: tta='yes' is not accepted"):
        settings({"SEMSEG_TTA": "tta=yes"})


@pytest.mark.parametrize(
    ("attributes", "named"),
    [
        ("tta=mirror", "tta='mirror' is not accepted; use tta=flip or tta=none"),
        ("scales=0.2", "scales='0.2' has a factor out of range"),
        ("scales=,", "scales=',' is not a list of numbers"),
        ("scales=2,2", "scales='2,2'"),
        ("size=2", "'size=2' is not an attribute this server reads"),
    ],
)
def test_bad_attributes_are_named(attributes: str, named: str) -> None:
    with pytest.raises(tta.BadAttributes, match="X-Amzn-SageMaker-Custom-Attributes") as info:
        tta.parse(attributes)
    assert named in str(info.value)


def test_a_requests_attributes_replace_the_defaults_they_name() -> None:
    default = tta.parse("tta=flip;scales=0.5,1")
    assert tta.parse("tta=none", default) == tta.Augmentation(False, (0.5, 1.0))
    assert tta.parse("scales=2", default) == tta.Augmentation(True, (2.0,))
    assert tta.parse(None, default) == default and default.describe() == "tta=flip;scales=0.5,1"
    assert tta.PLAIN.plain and tta.PLAIN.describe() == "none"
