"""Models: pretrained weights from the local store, resnet-101, whole-image evaluation without
rebuilding, and artifacts that load back into plain GluonCV / SymbolBlock and predict the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import FCN, DeepLabV3, PSPNet
from gluoncv.model_zoo.model_store import short_hash

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.engines.mxnet.network import build_model, set_output_size
from tests.tiny_mxnet import fake_imagenet_weights

CONFIG = Config(num_classes=3, num_training_samples=4, crop_size=32, use_pretrained_model=False)


def test_pretrained_backbone_is_loaded_from_the_local_store(tmp_path: Path) -> None:
    weights = fake_imagenet_weights(tmp_path / "models")
    config = dataclasses.replace(CONFIG, use_pretrained_model=True)
    net = build_model(config, [mx.cpu()], weights_root=tmp_path / "models")
    net(mx.nd.zeros((1, 3, 32, 32)))
    saved = mx.nd.load(str(weights))
    params = net._collect_params_with_prefix()
    for name in ("conv1.0.weight", "layer4.2.conv3.weight", "bn1.running_var"):
        assert np.array_equal(params[name].data().asnumpy(), saved[name].asnumpy()), name
    assert not any(name.startswith("head.") for name in saved)


def test_missing_weights_say_which_file_and_how_to_fix(tmp_path: Path) -> None:
    config = dataclasses.replace(CONFIG, use_pretrained_model=True)
    with pytest.raises(ClientError) as info:
        build_model(config, [mx.cpu()], weights_root=tmp_path / "models")
    message = str(info.value)
    assert f"resnet50_v1s-{short_hash('resnet50_v1s')}.params is missing" in message
    assert str(tmp_path / "models") in message and "use_pretrained_model=False" in message


def test_weights_of_the_wrong_layout_are_refused(tmp_path: Path) -> None:
    from gluoncv.model_zoo import resnet18_v1b

    fake_imagenet_weights(tmp_path / "models", net=resnet18_v1b(pretrained=False))
    config = dataclasses.replace(CONFIG, use_pretrained_model=True)
    with pytest.raises(ClientError, match="does not fit the backbone"):
        build_model(config, [mx.cpu()], weights_root=tmp_path / "models")


def test_pretrained_job_end_to_end(train_job, tmp_path: Path) -> None:
    fake_imagenet_weights(tmp_path / "mxnet" / "models")
    run = train_job({"use_pretrained_model": "True"}, env={"MXNET_HOME": str(tmp_path / "mxnet")}, images=4)
    assert run.code == 0, run.failure
    assert any(m.startswith("Loaded ImageNet backbone weights from ") for m in run.messages)


@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab", "deeplabv3plus"])
def test_resnet101_builds_and_runs(algorithm: str) -> None:
    config = dataclasses.replace(CONFIG, backbone="resnet-101", algorithm=algorithm)
    net = build_model(config, [mx.cpu()])
    out, aux = net(mx.nd.zeros((1, 3, 32, 32)))
    assert out.shape == aux.shape == (1, 3, 32, 32)
    assert "layer3.22.conv1.weight" in net._collect_params_with_prefix()


@pytest.mark.parametrize(("cls", "algorithm"), [(FCN, "fcn"), (PSPNet, "psp"), (DeepLabV3, "deeplab")])
def test_whole_image_output_equals_a_network_rebuilt_for_the_size(cls: type, algorithm: str, tmp_path: Path) -> None:
    """What the managed algorithm does per image (rebuild at the image size), we do by resizing in place."""
    net = build_model(dataclasses.replace(CONFIG, algorithm=algorithm), [mx.cpu()])
    net(mx.nd.zeros((1, 3, 32, 32)))
    params = tmp_path / "p.params"
    net.save_parameters(str(params))
    rng = np.random.default_rng(0)
    for h, w in [(40, 56), (64, 24)]:
        x = mx.nd.array(rng.normal(size=(1, 3, h, w)))
        set_output_size(net, h, w)
        ours = net(x)[0].asnumpy()
        rebuilt = cls(3, backbone="resnet50", pretrained_base=False, height=h, width=w, crop_size=32)
        rebuilt.load_parameters(str(params))
        np.testing.assert_allclose(ours, rebuilt(x)[0].asnumpy(), rtol=1e-4, atol=1e-4)
    for h, w in [(37, 53), (9, 70)]:  # sizes that are no multiple of 8 (the rebuilt PSP/DeepLab fail on them)
        set_output_size(net, h, w)
        assert net(mx.nd.zeros((1, 3, h, w)))[0].shape == (1, 3, h, w)


def test_whole_image_validation_on_images_of_different_sizes(train_job) -> None:
    run = train_job(
        {"algorithm": "psp", "validation_mini_batch_size": 1}, varied_sizes=True, images=6, validation_images=3, size=40
    )
    assert run.code == 0, run.failure
    assert len(run.metric("validation:mIOU")) == 1
