"""The real SageMaker Python SDK v2 in local mode drives the image with docker-compose, as a user would."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from tests.container.conftest import make_job

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


def test_sdk_v2_estimator_local_mode(image: str, tmp_path: Path, offline_sdk: None) -> None:
    from sagemaker.estimator import Estimator
    from sagemaker.local import LocalSession

    data = make_job(image, tmp_path / "data").joinpath("input", "data")
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": str(tmp_path / "sm")}}
    (tmp_path / "sm").mkdir()
    estimator = Estimator(
        image_uri=image,
        role="arn:aws:iam::111111111111:role/SageMakerRole",
        instance_count=1,
        instance_type="local",
        output_path=f"file://{tmp_path / 'output'}",
        sagemaker_session=session,
        hyperparameters={
            "num_classes": 3,
            "num_training_samples": 4,
            "use_pretrained_model": False,  # str() -> "False", as SDK v2 sends it
            "crop_size": 32,
            "epochs": 1,
            "mini_batch_size": 2,
            "learning_rate": 1e-05,
        },
        metric_definitions=[{"Name": "validation:mIOU", "Regex": r"validation mIOU: (\S+)"}],
    )
    estimator.fit(
        {
            name: f"file://{data / name}"
            for name in ("train", "validation", "train_annotation", "validation_annotation")
        },
        logs=True,
    )
    model_tar = Path(estimator.model_data.replace("file://", ""))
    assert model_tar.name == "model.tar.gz" and model_tar.exists(), os.listdir(tmp_path / "output")
    with tarfile.open(model_tar) as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= names
