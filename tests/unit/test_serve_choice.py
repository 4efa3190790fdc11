"""Which model of a folder answers (semseg.serving.choice.choose): the fastest one it holds on the CPU, unless
SEMSEG_SERVE_MODEL says; no runtime loads here."""

from __future__ import annotations

from pathlib import Path

import pytest

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.model_folder import ModelFolder
from semseg.contract.options import ServeOptions
from semseg.engines import engine
from semseg.serving.choice import choose

MXNET = engine("mxnet")


def folder(tmp_path: Path, *files: str) -> ModelFolder:
    for name in ("model_best.params", *files):
        (tmp_path / name).write_bytes(b"x")
    config = Config.from_hyperparameters({"num_classes": 3, "num_training_samples": 1, "mini_batch_size": 1})
    return ModelFolder(tmp_path, config, tmp_path / "model_best.params")


@pytest.mark.parametrize(
    ("files", "label"),
    [
        ((), "model_best.params on the MXNet engine"),
        (("model.onnx",), "model.onnx (FP32) on OpenVINO"),
        (("model.onnx", "model-int8.onnx"), "model-int8.onnx (INT8) on OpenVINO"),
    ],
)
def test_auto_on_the_cpu_takes_the_fastest_model_there_is(tmp_path: Path, files: tuple[str, ...], label: str) -> None:
    assert choose(folder(tmp_path, *files), ServeOptions(), 0, MXNET).label.startswith(label)


def test_gpus_and_autocast_serve_with_the_engine(tmp_path: Path) -> None:
    model = folder(tmp_path, "model.onnx", "model-int8.onnx")
    assert "MXNet engine" in choose(model, ServeOptions(), 1, MXNET).label
    assert "PyTorch engine" in choose(model, ServeOptions(autocast="bfloat16"), 0, engine("torch")).label


def test_a_forced_model_and_runtime(tmp_path: Path) -> None:
    model = folder(tmp_path, "model.onnx", "model-int8.onnx")
    chosen = choose(model, ServeOptions(model="fp32", runtime="onnxruntime"), 0, MXNET)
    assert chosen.label.startswith("model.onnx (FP32) on ONNX Runtime")
    assert "MXNet engine" in choose(model, ServeOptions(model="engine"), 0, MXNET).label


@pytest.mark.parametrize(
    ("options", "gpus", "message"),
    [
        (ServeOptions(model="int8"), 0, "SEMSEG_SERVE_MODEL=int8: the model folder"),
        (ServeOptions(model="fp32"), 2, "serves model.onnx on the CPU, and this host serves on 2 GPU(s)"),
        (ServeOptions(model="fp32", autocast="float16"), 0, "SEMSEG_SERVE_AUTOCAST=float16 is for the engine"),
    ],
)
def test_a_forced_model_the_folder_or_host_cannot_serve_is_a_client_error(
    tmp_path: Path, options: ServeOptions, gpus: int, message: str
) -> None:
    with pytest.raises(ClientError, match=message.replace("(", r"\(").replace(")", r"\)")):
        choose(folder(tmp_path, "model.onnx"), options, gpus, MXNET)
