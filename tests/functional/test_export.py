"""The exported model (semseg.export): the ONNX graph equals both engines' networks at any size, a job on either
engine writes it with its INT8 version and the gate's figures, and `serve` answers from them over real HTTP."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
import onnxruntime as ort
import pytest
import torch

from semseg.cli import EXIT_CLIENT_ERROR, main
from semseg.contract.config import Config
from semseg.contract.job import JobPaths, load_job
from semseg.contract.model_folder import ModelFolder, read_model_folder
from semseg.contract.options import ExportSettings
from semseg.data.dataset import read_image
from semseg.data.pipeline import list_channels
from semseg.engines.mxnet.network import build_model, set_output_size
from semseg.engines.mxnet.predict import load_predictor as mxnet_predictor
from semseg.engines.mxnet.predict import normalize
from semseg.engines.normalization import MEAN, STD
from semseg.engines.record import PredictorSettings
from semseg.engines.torch.convert import from_gluon
from semseg.engines.torch.network import SegmentationNet
from semseg.engines.torch.predict import load_predictor as torch_predictor
from semseg.example import make_job
from semseg.export import graph, runtime
from semseg.export.write import write_exports
from tests.helpers import serve_and_ask

ALGORITHMS = ("fcn", "psp", "deeplab", "deeplabv3plus")
SIZES = ((64, 64), (70, 53), (97, 130))  # the crop, and sizes of no multiple of 8 (PSP's bins do not divide them)
EXPORTS_ON = {"SEMSEG_EXPORT": "true", "SEMSEG_INT8": "true"}
CROP = 48


def random_network(algorithm: str, backbone: str) -> tuple[Config, Any, dict[str, np.ndarray]]:
    """An MXNet network with random weights and BatchNorm statistics (so that folding them is tested)."""
    rng = np.random.default_rng(1)
    config = Config.from_hyperparameters(
        {"algorithm": algorithm, "backbone": backbone, "num_classes": 5, "num_training_samples": 1,
         "mini_batch_size": 1, "use_pretrained_model": "False", "crop_size": 64}
    )  # fmt: skip
    net = build_model(config, [mx.cpu()], aux=False)
    net(mx.nd.zeros((1, 3, 64, 64)))
    params = net._collect_params_with_prefix()
    for name, param in params.items():
        if name.endswith(("running_mean", "beta")):
            param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape)))
        if name.endswith(("running_var", "gamma")):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
    return config, net, {name: param.data().asnumpy() for name, param in params.items()}


@pytest.mark.parametrize(
    ("algorithm", "backbone"), [*((a, "resnet-50") for a in ALGORITHMS), ("deeplab", "resnet-101")]
)
def test_the_graph_equals_both_engines_networks_at_any_size(algorithm: str, backbone: str, tmp_path: Path) -> None:
    config, net, arrays = random_network(algorithm, backbone)
    path = tmp_path / "model.onnx"
    path.write_bytes(graph.build(config, arrays).SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    mirror = SegmentationNet(algorithm, backbone, 5, aux=False).eval()
    from_gluon(mirror, arrays)
    openvino = runtime.scorer(path, "openvino")
    rng = np.random.default_rng(2)
    for height, width in SIZES:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        exported = session.run(None, {graph.INPUT: image[np.newaxis]})[0][0]
        assert exported.shape == (5, height, width)
        set_output_size(net, height, width)
        engine = mx.nd.softmax(net(normalize(mx.nd.array(image[np.newaxis], dtype="uint8")))[0], axis=1)
        np.testing.assert_allclose(exported, engine[0].asnumpy(), rtol=1e-4, atol=1e-6)
        pixels = torch.from_numpy(image).float().permute(2, 0, 1)[None] / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)
        with torch.no_grad():
            mirrored = torch.softmax(mirror(pixels / torch.tensor(STD).view(1, 3, 1, 1))[0], dim=1)[0].numpy()
        np.testing.assert_allclose(exported, mirrored, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(openvino(image), exported, rtol=1e-4, atol=1e-5)  # float32, not its bfloat16


def train(base: Path, env: dict[str, str]) -> int:
    hp = {"epochs": 6, "mini_batch_size": 4, "validation_mini_batch_size": 2, "crop_size": CROP}
    make_job(base, images=16, size=CROP, hyperparameters=hp)
    return main(["train"], {"SAGEMAKER_BASE_DIR": str(base), **EXPORTS_ON, **env}).code


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ModelFolder:
    """A job's model folder with both exports: the gate's limits wide open, so that the INT8 model is kept (the
    gate's decision is tested on its own, tests/unit/test_int8_gate.py)."""
    base = tmp_path_factory.mktemp("export") / "ml"
    limits = {"SEMSEG_INT8_MAX_MIOU_LOSS": "100", "SEMSEG_INT8_MAX_CLASS_LOSS": "100"}
    assert train(base, limits) == 0
    return read_model_folder(base / "model", "the test model")


def photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8) + rng.integers(0, 255, 3, dtype=np.uint8)
    image[height // 4 : height * 3 // 4, width // 3 :] = rng.integers(0, 255, 3, dtype=np.uint8)
    return np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)


def test_a_job_writes_the_exports_and_the_gates_figures(exported: ModelFolder) -> None:
    assert {"model.onnx", "model-int8.onnx", "model_best.params", "model-symbol.json"} <= {
        p.name for p in exported.path.iterdir()
    }
    int8 = exported.path / "model-int8.onnx"
    assert int8.stat().st_size < (exported.path / "model.onnx").stat().st_size / 3  # int8 weights
    evaluation = json.loads((exported.path.parent / "output" / "data" / "evaluation.json").read_text())
    gate = evaluation["int8"]
    assert gate["kept"] is True and gate["calibration_images"] == 16 and gate["validation_images"] == 4
    assert len(gate["int8_per_class_iou"]) == len(gate["fp32_per_class_iou"]) == 3
    assert gate["fp32_mIOU"] == pytest.approx(float(np.mean(gate["fp32_per_class_iou"])))
    assert "mIOU" in evaluation  # the best epoch's validation is still there


def test_the_fp32_export_predicts_what_the_engine_predicts(exported: ModelFolder) -> None:
    engine = mxnet_predictor(exported, "cpu", PredictorSettings(10**6))
    export = runtime.predictor(exported.path / "model.onnx", "openvino", 3, CROP, 10**6)
    for image in (photo(48, 48, 1), photo(61, 90, 2)):
        np.testing.assert_allclose(export.probabilities(image), engine.probabilities(image), rtol=1e-4, atol=1e-5)


def test_a_torch_job_writes_the_export_of_its_own_network(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Two DDP processes (SEMSEG_CPU_DEVICES=2): the first alone exports, after the artifacts, and the job ends."""
    env = {"SEMSEG_ENGINE": "torch", "SEMSEG_CPU_DEVICES": "2", "SEMSEG_INT8_CALIBRATION_IMAGES": "5"}
    with caplog.at_level("INFO"):
        assert train(tmp_path / "ml", env) == 0
    logged = capfd.readouterr().out  # every line once: the job's (the export's, after training) and its processes'
    assert logged.count("model.onnx (") == 1 and logged.count("calibrated on 5 training image(s)") == 1
    assert logged.count("Channel validation: ") == 1, "the export lists the channels again without saying so"
    folder = read_model_folder(tmp_path / "ml" / "model", "the torch job's model")
    kept = (folder.path / "model-int8.onnx").is_file()
    gate = json.loads((tmp_path / "ml" / "output" / "data" / "evaluation.json").read_text())["int8"]
    assert gate["kept"] is kept and ("INT8 model kept" if kept else "INT8 model not kept") in logged
    engine = torch_predictor(folder, "cpu", PredictorSettings(10**6))
    export = runtime.predictor(folder.path / "model.onnx", "onnxruntime", 3, CROP, 10**6)
    image = photo(53, 70, 3)
    np.testing.assert_allclose(export.probabilities(image), engine.probabilities(image), rtol=1e-4, atol=1e-5)


def test_with_exports_off_a_job_writes_the_managed_artifacts_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO"):
        assert train(tmp_path / "off", {"SEMSEG_EXPORT": "false"}) == 0
    assert not list((tmp_path / "off" / "model").glob("*.onnx"))
    assert "SEMSEG_EXPORT=false: no model.onnx" in caplog.text


def test_serve_answers_from_the_fastest_model_as_the_engine_does(exported: ModelFolder) -> None:
    """The class PNGs of the FP32 export equal the engine's on >= 99.9% of pixels, the INT8 model's on >= 98%, on
    images like the model's own (its validation images, and a 96x96 mosaic of them above the pixel budget:
    windows)."""
    validation = sorted((exported.path.parent / "input" / "data" / "validation").glob("*.jpg"))
    images = [read_image(path) for path in validation]
    images.append(np.block([[[images[0]], [images[1]]], [[images[2]], [images[3]]]]).reshape(96, 96, 3))
    windows = {"SEMSEG_PIXEL_BUDGET": "2500"}
    engine, engine_log = serve_and_ask(exported.path, images, SEMSEG_SERVE_MODEL="engine", **windows)
    assert "model_best.params on the MXNet engine (" in engine_log
    fastest, fastest_log = serve_and_ask(exported.path, images, **windows)
    assert "model-int8.onnx (INT8) on OpenVINO" in fastest_log, fastest_log[-3000:]
    fp32, fp32_log = serve_and_ask(
        exported.path, images, SEMSEG_SERVE_MODEL="fp32", SEMSEG_SERVE_RUNTIME="onnxruntime", **windows
    )
    assert "model.onnx (FP32) on ONNX Runtime" in fp32_log, fp32_log[-3000:]
    pixels = sum(a.size for a in engine)
    assert sum(int((a == b).sum()) for a, b in zip(fp32, engine, strict=True)) >= 0.999 * pixels
    assert sum(int((a == b).sum()) for a, b in zip(fastest, engine, strict=True)) >= 0.98 * pixels


def model_copy(exported: ModelFolder, tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("hyperparams.json", "model_best.params", *names):
        os.link(exported.path / name, folder / name)
    return folder


def test_an_export_asked_for_and_missing_is_a_client_error(
    exported: ModelFolder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model_copy(exported, tmp_path, "model.onnx")
    done = main(["serve"], {"SAGEMAKER_BASE_DIR": str(tmp_path), "SEMSEG_SERVE_MODEL": "int8"})
    assert done.code == EXIT_CLIENT_ERROR
    assert "SEMSEG_SERVE_MODEL=int8" in caplog.text and "has no model-int8.onnx" in caplog.text


def test_a_broken_export_ends_serve_naming_it(
    exported: ModelFolder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = model_copy(exported, tmp_path)
    (folder / "model.onnx").write_bytes((exported.path / "model.onnx").read_bytes()[:100_000])
    done = main(["serve"], {"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert done.code == EXIT_CLIENT_ERROR
    assert f"{folder / 'model.onnx'} cannot be served by OpenVINO (RuntimeError: Model can't be parsed)" in caplog.text
    assert "SEMSEG_SERVE_MODEL=engine" in caplog.text


@pytest.mark.parametrize("stop_after", [3, 20])  # during calibration (16 images), during the gate (4 images)
def test_a_stop_during_the_int8_work_leaves_the_fp32_export(
    exported: ModelFolder, tmp_path: Path, caplog: pytest.LogCaptureFixture, stop_after: int
) -> None:
    base = tmp_path / "ml"
    shutil.copytree(exported.path.parent, base, copy_function=os.link)
    (base / "model" / "model-int8.onnx").unlink()
    asked = iter(range(10**6))
    with caplog.at_level("INFO"):
        job = load_job(JobPaths(base))
        stop = lambda: next(asked) >= stop_after  # noqa: E731
        write_exports(job, exported.config, ExportSettings(), 10**6, stop, list_channels(job))
    assert "Stopped: model-int8.onnx abandoned; model.onnx serves" in caplog.text
    assert (base / "model" / "model.onnx").is_file() and not list((base / "model").glob("*int8*"))
