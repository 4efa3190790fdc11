"""`serve` on the PyTorch engine (SEMSEG_ENGINE=torch, the torch image's default): the GluonCV files of a model
folder in the PyTorch network, predicting through the same windows, content types and errors as the MXNet
server. Tested against the MXNet server on the same model: the class PNGs agree on at least 99% of the pixels
(the two engines' float32 kernels differ in rounding only), and through `python -m semseg serve` over HTTP."""

from __future__ import annotations

import io

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from semseg.contract.model_folder import ModelFolder
from semseg.engines.mxnet.network import load_model
from semseg.engines.mxnet.predict import Predictor as MXNetPredictor
from semseg.engines.record import PredictorSettings
from semseg.engines.torch.predict import load_predictor
from semseg.serving.app import App
from tests.helpers import call, photo, serve_and_ask

AGREEMENT = 0.99
SIZES = [(32, 32), (40, 52), (61, 47), (90, 120)]  # the last above the test's pixel budget: windows


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a == b).mean())


@pytest.fixture(scope="module")
def apps(model: ModelFolder) -> tuple[App, App]:
    budget = 64 * 64
    mxnet_app = App(MXNetPredictor(load_model(model, [mx.cpu()]), mx.cpu(), model.config.crop_size, budget), 1)
    return mxnet_app, App(load_predictor(model, "cpu", PredictorSettings(budget)), 1)


def classes_of(app: App, image: np.ndarray, **headers: str) -> np.ndarray:
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    answer = call(app, "/invocations", png.getvalue(), content_type="image/png", accept="image/png", **headers)
    assert answer.status == 200, answer.text
    return np.asarray(Image.open(io.BytesIO(answer.body)))


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_the_torch_server_answers_as_the_mxnet_server(apps: tuple[App, App], height: int, width: int) -> None:
    mxnet_app, torch_app = apps
    image = photo(height, width, seed=height * width)
    assert agreement(classes_of(torch_app, image), classes_of(mxnet_app, image)) >= AGREEMENT
    theirs = mxnet_app.predictor.probabilities(image)
    ours = torch_app.predictor.probabilities(image)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_flip_and_the_other_answers_work_on_the_torch_server(apps: tuple[App, App]) -> None:
    mxnet_app, torch_app = apps
    image = photo(40, 52, seed=5)
    flipped = classes_of(torch_app, image, x_amzn_sagemaker_custom_attributes="tta=flip")
    assert agreement(flipped, classes_of(mxnet_app, image, x_amzn_sagemaker_custom_attributes="tta=flip")) >= AGREEMENT
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    for accept in ("image/jpeg", "application/x-protobuf"):
        answer = call(torch_app, "/invocations", png.getvalue(), content_type="image/png", accept=accept)
        assert answer.status == 200 and answer.headers["Content-Type"] == accept
    assert call(torch_app, "/invocations", b"not an image").status == 400


def test_bfloat16_autocast_on_the_cpu_keeps_most_of_the_class_map(model: ModelFolder) -> None:
    plain = load_predictor(model, "cpu", PredictorSettings(10**6))
    mixed = load_predictor(model, "cpu", PredictorSettings(10**6, "bfloat16"))
    image = photo(61, 47, seed=3)
    assert agreement(mixed.classes(image), plain.classes(image)) >= 0.95


def test_serve_with_the_torch_engine_over_http(model: ModelFolder, apps: tuple[App, App]) -> None:
    image = photo(40, 52, seed=9)
    (served,), out = serve_and_ask(model.path, [image], SEMSEG_ENGINE="torch")
    assert agreement(served, classes_of(apps[0], image)) >= AGREEMENT
    assert "SEMSEG_ENGINE=torch: serving with PyTorch on the CPU" in out
    assert "on the PyTorch engine (" in out and "(PyTorch 2." in out, out[-3000:]


def test_autocast_is_refused_on_the_mxnet_engine(
    model: ModelFolder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from semseg.cli import EXIT_CLIENT_ERROR, main

    env = {"SAGEMAKER_BASE_DIR": str(model.path.parent), "SEMSEG_SERVE_AUTOCAST": "bfloat16"}
    assert main(["serve"], env).code == EXIT_CLIENT_ERROR
    assert "SEMSEG_SERVE_AUTOCAST=bfloat16 is for SEMSEG_ENGINE=torch" in caplog.text
    assert main(["serve"], {**env, "SEMSEG_ENGINE": "torch", "SEMSEG_SERVE_AUTOCAST": "int8"}).code == EXIT_CLIENT_ERROR
    assert "SEMSEG_SERVE_AUTOCAST='int8': give bfloat16 or float16" in caplog.text
