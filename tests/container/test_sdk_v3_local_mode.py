"""SageMaker Python SDK v3 (ModelTrainer, Mode.LOCAL_CONTAINER, Compute(instance_type="local_cpu")) trains with the
image offline, and v3's low-level local client (LocalSession) serves the model.tar.gz with the image's `serve`, in
its own environment: the client script runs under $SEMSEG_SDK3_PYTHON (make test-container makes .venv-sdk3 from
requirements/sdk3.txt)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.container.support import ROOT, jpeg, make_job

pytestmark = pytest.mark.container


# LocalSession needs a region and (dummy) credentials; with file:// model data it never calls AWS
OFFLINE = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "SAGEMAKER_TELEMETRY_OPT_OUT": "true",
}


def sdk3_python() -> str:
    python = os.environ.get("SEMSEG_SDK3_PYTHON") or str(ROOT / ".venv-sdk3" / "bin" / "python")
    assert Path(python).exists(), f"{python} is missing: run `make test-container`, which makes .venv-sdk3"
    return python


def test_model_trainer_trains_and_local_session_serves(image: str, tmp_path: Path) -> None:
    import io

    import numpy as np
    from PIL import Image
    from sagemaker.amazon.common import read_recordio
    from sagemaker.amazon.record_pb2 import Record

    job = make_job(image, tmp_path / "job", {"epochs": "2"})
    (tmp_path / "request.jpg").write_bytes(jpeg(40, 52, 0))
    script = str(ROOT / "tests" / "container" / "sdk_v3_train.py")
    answers = tmp_path / "answers"
    done = subprocess.run(
        [sdk3_python(), script, image, str(job), str(tmp_path / "root"), str(tmp_path / "request.jpg"), str(answers)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **OFFLINE},
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert out.count(", validation mIOU: ") == 2 and "Training job completed" in out
    [line] = [line for line in done.stdout.splitlines() if line.startswith("MODEL ")]
    assert set(json.loads(line[len("MODEL ") :])) >= {
        "hyperparams.json", "model_algo-1", "model_best.params", "model-symbol.json", "model-0000.params"
    }  # fmt: skip
    assert "ANSWER png image/png 200" in done.stdout and "ANSWER jpeg image/jpeg 200" in done.stdout, out_text(done)
    mask = Image.open(answers / "png")
    assert mask.mode == "L" and mask.size == (52, 40) and int(np.asarray(mask).max()) < 3
    record = Record()
    record.ParseFromString(next(iter(read_recordio(io.BytesIO((answers / "protobuf").read_bytes())))))
    shape = list(record.features["shape"].int32_tensor.values)
    assert shape == [1, 3, 40, 52]
    probabilities = np.reshape(np.array(record.features["target"].float32_tensor.values), shape)[0]
    assert np.array_equal(probabilities.argmax(axis=0), np.asarray(mask))
    picture = Image.open(answers / "jpeg")
    assert picture.format == "JPEG" and picture.size == (52, 40) and picture.mode == "RGB"


def out_text(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stdout + done.stderr)[-4000:]
