"""GluonCV's backbone files as both engines find them (semseg.engines.weights): the names GluonCV's own model
store gives them, and the ClientError of a store without them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semseg.contract.errors import ClientError
from semseg.engines.architecture import backbone_shapes
from semseg.engines.weights import (
    GLUONCV_BACKBONES,
    MANIFEST,
    STORE_HASHES,
    STORE_SHA1,
    backbone_weights_file,
    built_without_weights,
)  # fmt: skip


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
    assert (
        "use_pretrained_model=False" in message and "weights baked in" in message and "semseg-weights import" in message
    )


def test_the_sha1_sums_are_gluoncvs_own() -> None:
    from gluoncv.model_zoo import model_store

    import semseg.engines.mxnet.gluoncv_import  # noqa: F401  # first: GluonCV beside torch 2

    assert {name: model_store._model_sha1[name] for name in STORE_SHA1} == STORE_SHA1


def test_an_image_built_without_weights_says_so_and_how_to_add_them(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"files": {}, "built_without_weights": True}))
    assert built_without_weights(tmp_path)
    with pytest.raises(ClientError, match=r"this image was built without ImageNet weights \(PREFETCH_WEIGHTS=0\)"):
        backbone_weights_file("resnet-50", tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"files": {"resnet50_v1s-25a187fa.params": {}}}))
    assert not built_without_weights(tmp_path)


def test_the_backbone_shapes_are_gluoncvs_resnet_v1s() -> None:
    import mxnet as mx
    from gluoncv.model_zoo import resnet50_v1s, resnet101_v1s

    import semseg.engines.mxnet.gluoncv_import  # noqa: F401  # first: GluonCV beside torch 2

    for backbone, model in (("resnet-50", resnet50_v1s), ("resnet-101", resnet101_v1s)):
        net = model(pretrained=False)
        net.initialize()
        net(mx.nd.zeros((1, 3, 32, 32)))
        found = {k: v.shape for k, v in net._collect_params_with_prefix().items() if not k.startswith("fc.")}
        assert found == backbone_shapes(backbone)
