"""GluonCV's backbone files as both engines find them (semseg.engines.weights): the names GluonCV's own model
store gives them, and the ClientError of a store without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from semseg.contract.errors import ClientError
from semseg.engines.weights import GLUONCV_BACKBONES, STORE_HASHES, backbone_weights_file


def test_the_hashes_are_gluoncvs_own() -> None:
    from semseg.engines.mxnet.gluoncv_import import short_hash

    assert STORE_HASHES == {name: short_hash(name) for name in STORE_HASHES}
    assert {f"{name}_v1s" for name in GLUONCV_BACKBONES.values()} == set(STORE_HASHES)


def test_the_file_is_found_by_its_name_else_any_of_its_model(tmp_path: Path) -> None:
    exact = tmp_path / "resnet50_v1s-25a187fa.params"
    other = tmp_path / "resnet50_v1s-0000.params"
    other.write_bytes(b"x")
    assert backbone_weights_file("resnet-50", tmp_path) == other  # another version of the file: used, with a warning
    exact.write_bytes(b"x")
    assert backbone_weights_file("resnet-50", tmp_path) == exact


def test_a_missing_file_names_it_and_the_two_fixes(tmp_path: Path) -> None:
    with pytest.raises(ClientError) as info:
        backbone_weights_file("resnet-101", tmp_path / "nowhere")
    message = str(info.value)
    assert "resnet101_v1s-bd93a83c.params is missing" in message
    assert "use_pretrained_model=False" in message and "weights baked in" in message
