"""The real SageMaker Python SDK v2 in local mode drives the image with docker-compose, as a user would."""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.container.support import gluoncv_output_shape, jpeg, make_job

pytestmark = pytest.mark.container

sagemaker = pytest.importorskip("sagemaker", reason="run with the SDK environment: make test-container")


@pytest.fixture
def offline_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local mode needs a region and (dummy) credentials; it never calls AWS with file:// data and output."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("SAGEMAKER_TELEMETRY_OPT_OUT", "true")
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


def fitted_estimator(image: str, tmp_path: Path, instance_count: int = 1, **extra: Any) -> Any:
    """An SDK v2 Estimator of `image` in local mode, fitted on a tiny generated job through file:// channels."""
    from sagemaker.estimator import Estimator
    from sagemaker.local import LocalSession

    data = make_job(image, tmp_path / "data").joinpath("input", "data")
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": str(tmp_path / "sm")}}
    (tmp_path / "sm").mkdir()
    hyperparameters = {
        "num_classes": 3,
        "num_training_samples": 4,
        "use_pretrained_model": False,  # str() -> "False", as SDK v2 sends it
        "crop_size": 32,
        "epochs": 1,
        "mini_batch_size": 2,
    }
    estimator = Estimator(
        image_uri=image,
        role="arn:aws:iam::111111111111:role/SageMakerRole",
        instance_count=instance_count,
        instance_type="local",
        output_path=f"file://{tmp_path / 'output'}",
        sagemaker_session=session,
        hyperparameters={**hyperparameters, **extra.pop("hyperparameters", {})},
        **extra,
    )
    channels = ("train", "validation", "train_annotation", "validation_annotation")
    estimator.fit({name: f"file://{data / name}" for name in channels}, logs=True)
    return estimator


def test_sdk_v2_local_mode_on_two_instances(
    image: str, tmp_path: Path, offline_sdk: None, capfd: pytest.CaptureFixture[str]
) -> None:
    """Two containers on the SDK's compose network train one model on MXNet's parameter server."""
    estimator = fitted_estimator(image, tmp_path, instance_count=2, hyperparameters={"epochs": 2})
    log = capfd.readouterr().out
    assert_each_host_logged_two_epochs(log)
    assert "kvstore dist_sync" in log
    names = model_tar_names(estimator, tmp_path / "model")
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= set(names)


def assert_each_host_logged_two_epochs(log: str) -> None:
    hosts = sorted(set(re.findall(r"host: (algo-\d-\w+), epoch: 0, train loss", log)))
    assert len(hosts) == 2, log[-3000:]
    for host in hosts:
        assert len(re.findall(rf"host: {host}, epoch: \d, validation mIOU", log)) == 2


def model_tar_names(estimator: Any, unpack_to: Path) -> list[str]:
    """The file names in the fitted estimator's model.tar.gz, unpacked to `unpack_to`: one host's files, so
    nothing collides."""
    with tarfile.open(Path(estimator.model_data.replace("file://", ""))) as tar:
        names = [Path(n).name for n in tar.getnames() if n not in (".", "")]
        tar.extractall(unpack_to, filter="data")
    assert len(names) == len(set(names)), "one host's files: nothing collides"
    return names


def test_sdk_v2_local_mode_on_two_instances_of_the_torch_image(
    image: str, torch_image: str, tmp_path: Path, offline_sdk: None, capfd: pytest.CaptureFixture[str]
) -> None:
    """Two containers of the torch image train one model on torch.distributed (gloo on the CPU, static rendezvous
    at the first host), and the model.tar.gz's model_algo-1 loads in plain GluonCV (the CPU image's, no torch)."""
    estimator = fitted_estimator(torch_image, tmp_path, instance_count=2, hyperparameters={"epochs": 2})
    log = capfd.readouterr().out
    assert_each_host_logged_two_epochs(log)
    assert "rendezvous at " in log and "torch.distributed gloo) on each of 2 hosts" in log, log[-3000:]
    assert "GLOO_SOCKET_IFNAME=eth0" in log
    miou = {float(v) for v in re.findall(r"epoch: 1, validation mIOU: (\S+) \.", log)}
    assert len(miou) == 1, "global: the same on both hosts"
    unpacked = tmp_path / "model"
    assert "model_algo-1" in model_tar_names(estimator, unpacked)
    assert gluoncv_output_shape(image, unpacked, "model_algo-1") == "(1, 3, 32, 32)"


def test_sdk_v2_fit_deploy_predict_and_batch_transform(image: str, tmp_path: Path, offline_sdk: None) -> None:
    """Estimator.fit (a float hyperparameter as SDK v2 sends it, metric definitions) -> the model.tar.gz's files ->
    deploy(1, "local") of the job's exported model.onnx -> predict with both Accept types and with test-time
    augmentation (CustomAttributes) -> Transformer of the export over a folder of JPEGs, and over a large PNG."""
    import io

    import numpy as np
    from PIL import Image
    from sagemaker.amazon.common import read_recordio
    from sagemaker.amazon.record_pb2 import Record
    from sagemaker.deserializers import BytesDeserializer
    from sagemaker.serializers import IdentitySerializer

    estimator = fitted_estimator(
        image,
        tmp_path,
        hyperparameters={"learning_rate": 1e-05},
        metric_definitions=[{"Name": "validation:mIOU", "Regex": r"validation mIOU: (\S+)"}],
    )
    model_tar = Path(estimator.model_data.replace("file://", ""))
    assert model_tar.name == "model.tar.gz" and model_tar.exists(), os.listdir(tmp_path / "output")
    with tarfile.open(model_tar) as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {"model_algo-1", "model_best.params", "hyperparams.json", "model.onnx"} <= names  # with the export
    exported = {"SEMSEG_SERVE_MODEL": "fp32"}  # answered by model.onnx, or a ClientError where it is missing
    predictor = estimator.deploy(
        1, "local", serializer=IdentitySerializer("image/jpeg"), deserializer=BytesDeserializer("image/png"),
        env=exported,
    )  # fmt: skip
    try:
        mask = Image.open(io.BytesIO(predictor.predict(jpeg(40, 52, 0))))
        assert mask.mode == "L" and mask.size == (52, 40)
        assert int(np.asarray(mask).max()) < 3
        body = predictor.predict(jpeg(40, 52, 0), initial_args={"Accept": "application/x-protobuf"})
        record = Record()
        record.ParseFromString(next(iter(read_recordio(io.BytesIO(body)))))  # as the AWS notebook
        shape = list(record.features["shape"].int32_tensor.values)
        probabilities = np.reshape(np.array(record.features["target"].float32_tensor.values), shape)
        assert shape == [1, 3, 40, 52]
        assert np.array_equal(np.squeeze(probabilities, axis=0).argmax(axis=0), np.asarray(mask))

        def probabilities_of(picture: np.ndarray, **args: str) -> np.ndarray:
            png = io.BytesIO()
            Image.fromarray(picture).save(png, format="PNG")  # lossless: the mirror is exactly the mirror
            initial_args = {"Accept": "application/x-protobuf", "ContentType": "image/png", **args}
            answer = Record()
            answer.ParseFromString(
                next(iter(read_recordio(io.BytesIO(predictor.predict(png.getvalue(), initial_args)))))
            )
            values = np.array(answer.features["target"].float32_tensor.values, dtype=np.float32)
            return values.reshape(list(answer.features["shape"].int32_tensor.values))[0]

        picture = np.random.default_rng(3).integers(0, 256, (36, 44, 3), dtype=np.uint8)
        mirrored = probabilities_of(np.ascontiguousarray(picture[:, ::-1]))[:, :, ::-1]
        flipped = probabilities_of(picture, CustomAttributes="tta=flip")  # the endpoint's header, through the SDK
        np.testing.assert_allclose(flipped, (probabilities_of(picture) + mirrored) / 2, rtol=1e-4, atol=1e-6)
    finally:
        predictor.delete_endpoint()

    images = tmp_path / "batch"
    images.mkdir()
    sizes = {"a.jpg": (30, 41), "b.jpg": (48, 33), "c.jpg": (36, 36)}
    for i, (name, (height, width)) in enumerate(sizes.items()):
        (images / name).write_bytes(jpeg(height, width, i))
    transformer = estimator.transformer(
        1, "local", accept="image/png", output_path=f"file://{tmp_path / 'out'}", env=exported
    )
    transformer.transform(f"file://{images}", content_type="image/jpeg", wait=True, logs=False)  # no CloudWatch
    for name, (height, width) in sizes.items():
        out = Image.open(tmp_path / "out" / f"{name}.out")
        assert out.mode == "L" and out.size == (width, height)

    # aerial and medical images: over the 6 MB default, with max_payload=20 (SAGEMAKER_MAX_PAYLOAD_IN_MB)
    large = tmp_path / "large"
    large.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (1500, 1800, 3), dtype=np.uint8)  # noise: PNG cannot shrink it
    Image.fromarray(pixels).save(large / "aerial.png")
    assert (large / "aerial.png").stat().st_size > 6 * 2**20
    transformer = estimator.transformer(
        1, "local", accept="image/png", max_payload=20, output_path=f"file://{tmp_path / 'out-large'}",
        env={"SEMSEG_PIXEL_BUDGET": "3000000"},  # one pass: this model's crop_size=32 windows would take minutes
    )  # fmt: skip
    transformer.transform(f"file://{large}", content_type="image/png", wait=True, logs=False)
    out = Image.open(tmp_path / "out-large" / "aerial.png.out")
    assert out.mode == "L" and out.size == (1800, 1500)
