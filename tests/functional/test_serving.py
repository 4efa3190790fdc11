"""The inference app in-process on a tiny trained model: content types, errors, and predictions equal to plain
GluonCV's `net.predict` + argmax on the same weights."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import FCN
from PIL import Image

from semseg.cli import EXIT_CLIENT_ERROR, main
from semseg.contract.model_folder import ModelFolder
from semseg.data.recordio import LENGTH_MASK
from semseg.engines.mxnet.network import load_model
from semseg.engines.mxnet.predict import Predictor, Scorer, normalize, window_starts
from semseg.serving.app import App
from tests.helpers import CLASSES, CROP, Response, call, encoded, photo, png_classes
from tests.tiny_mxnet import app_for, decode_record, predictor_for


@pytest.fixture(scope="module")
def app(model: ModelFolder) -> App:
    return app_for(model)


def gluoncv_classes(model: ModelFolder, image: np.ndarray) -> np.ndarray:
    """Plain GluonCV: its FCN with the model's weights, `predict` at the image's size, argmax."""
    net = FCN(CLASSES, backbone="resnet50", aux=False, pretrained_base=False, crop_size=CROP)
    net.load_parameters(str(model.weights), ignore_extra=True)
    x = normalize(mx.nd.array(image[np.newaxis], dtype="uint8"))
    return net.predict(x)[0].argmax(axis=1)[0].asnumpy().astype(np.uint8)


def test_ping_and_execution_parameters(app: App) -> None:
    assert call(app, "/ping", method="GET").status == 200
    response = call(app, "/execution-parameters", method="GET")
    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    params = json.loads(response.body)
    assert params == {"MaxConcurrentTransforms": 2, "BatchStrategy": "SingleRecord", "MaxPayloadInMB": 6}


@pytest.mark.parametrize("accept", ["image/png", "*/*", None, "text/html, image/png;q=0.9"])
def test_png_of_class_ids_equals_plain_gluoncv(app: App, model: ModelFolder, accept: str | None) -> None:
    image = photo(45, 61)
    body = encoded(image, "PNG")  # lossless: the server and GluonCV see the same pixels
    response = call(app, "/invocations", body, content_type="image/png", **({"accept": accept} if accept else {}))
    assert response.status == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    classes = png_classes(response.body)
    assert classes.shape == (45, 61)
    np.testing.assert_array_equal(classes, gluoncv_classes(model, image))


@pytest.mark.parametrize("accept", ["application/x-protobuf", "application/x-recordio-protobuf"])
def test_probabilities_as_recordio_protobuf(app: App, accept: str, tmp_path: Path) -> None:
    body = encoded(photo(40, 50, seed=1), "PNG")
    response = call(app, "/invocations", body, content_type="image/png", accept=accept)
    assert response.status == 200 and response.headers["Content-Type"] == accept
    probabilities = decode_record(response.body, tmp_path)
    assert probabilities.shape == (1, CLASSES, 40, 50)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    png = call(app, "/invocations", body, content_type="image/png", accept="image/png")
    np.testing.assert_array_equal(probabilities[0].argmax(axis=0), png_classes(png.body))


@pytest.mark.parametrize("content_type", ["image/jpeg", "application/x-image", "image/jpeg; charset=binary"])
def test_jpeg_requests(app: App, content_type: str) -> None:
    response = call(app, "/invocations", encoded(photo(30, 20)), content_type=content_type)
    assert response.status == 200 and png_classes(response.body).shape == (30, 20)


def test_exif_orientation_is_applied(app: App) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated by 90 degrees: portrait
    response = call(app, "/invocations", encoded(photo(20, 36), exif=exif))
    assert response.status == 200 and png_classes(response.body).shape == (36, 20)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_grayscale_rgba_and_palette_images_are_converted(app: App, mode: str) -> None:
    picture = Image.fromarray(photo(24, 28)).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        picture = Image.fromarray(np.asarray(picture).astype(np.uint16) * 256)
    response = call(app, "/invocations", encoded(picture, "PNG"), content_type="image/png")
    assert response.status == 200, response.text
    assert png_classes(response.body).shape == (24, 28)


def test_a_16_bit_png_predicts_as_its_8_bit_version(app: App) -> None:
    gray = photo(24, 28)[..., 0]
    eight = call(app, "/invocations", encoded(Image.fromarray(gray), "PNG"), content_type="image/png")
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)  # 0..255 -> 0..65535: Pillow's conversion clipped it
    wide = call(app, "/invocations", encoded(sixteen, "PNG"), content_type="image/png")
    assert eight.status == wide.status == 200
    np.testing.assert_array_equal(png_classes(wide.body), png_classes(eight.body))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_image_is_400_where_gluoncv_made_pillow_lenient(app: App, fmt: str) -> None:
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES, "GluonCV is imported here, and sets it"
    whole = encoded(photo(64, 64), fmt)
    response = call(app, "/invocations", whole[: len(whole) * 3 // 4], content_type=f"image/{fmt.lower()}")
    assert response.status == 400 and "truncated" in response.text


def test_formats_other_than_jpeg_and_png_are_415(app: App) -> None:
    response = call(app, "/invocations", encoded(photo(24, 28), "TIFF"), content_type="image/png")
    assert response.status == 415 and "only JPEG and PNG" in response.text


def test_bad_requests_get_their_status_and_the_server_goes_on(app: App) -> None:
    jpeg = encoded(photo(30, 30))
    cases = [
        (call(app, "/invocations", jpeg, content_type="text/csv"), 415, "image/jpeg, image/png, application/x-image"),
        (call(app, "/invocations", jpeg, content_type=None), 415, "Content-Type (none)"),
        (call(app, "/invocations", jpeg, accept="application/json"), 415, "image/png, application/x-protobuf"),
        (
            call(app, "/invocations", jpeg, accept="application/json"),
            415,
            "application/x-recordio-protobuf, image/jpeg",
        ),
        (call(app, "/invocations", b"not an image at all"), 400, "not a readable image"),
        (call(app, "/invocations", jpeg[: len(jpeg) // 2]), 400, "not a readable image"),
        (call(app, "/invocations", b""), 400, "empty"),
        (call(app, "/invocations", method="GET"), 405, "POST"),
        (call(app, "/nowhere", method="GET"), 404, "/invocations"),
    ]
    for response, status, words in cases:
        assert response.status == status, response.text
        assert words in response.text
    assert call(app, "/invocations", jpeg).status == 200


def test_batch_transforms_larger_payload_is_honoured(app: App) -> None:
    """SAGEMAKER_MAX_PAYLOAD_IN_MB (batch transform's MaxPayloadInMB): a 7 MB body is over 6 MB, within 20 MB."""
    body = b"x" * (7 * 1024 * 1024)
    assert call(app, "/invocations", body).status == 413
    larger = App(app.predictor, max_concurrent_transforms=2, max_payload_mb=20)
    response = call(larger, "/invocations", body)
    assert response.status == 400 and "not a readable image" in response.text, "read whole, then judged as an image"
    params = json.loads(call(larger, "/execution-parameters", method="GET").body)
    assert params["MaxPayloadInMB"] == 20


def test_a_body_over_the_limit_is_413_without_reading_it(app: App) -> None:
    environ = {
        "PATH_INFO": "/invocations",
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "image/jpeg",
        "CONTENT_LENGTH": str(6 * 1024 * 1024 + 1),
        "wsgi.input": io.BytesIO(b""),
    }
    response = Response(app, environ)
    assert response.status == 413 and "6 MB" in response.text


@pytest.mark.parametrize(
    ("side", "words"),
    [(8001, "more than 64000000"), (14000, "too large")],  # over 64 Mpx; over Pillow's 178 Mpx
)
def test_an_image_over_64_mpx_is_413(app: App, side: int, words: str) -> None:
    body = encoded(Image.new("1", (side, side)), "PNG")  # one bit per pixel: a few KB
    response = call(app, "/invocations", body, content_type="image/png")
    assert response.status == 413 and words in response.text


class CountingPredictor(Predictor):
    calls = 0

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        self.calls += 1
        return super().probabilities(image)


def test_probabilities_over_a_recordio_record_are_413_before_any_prediction(model: ModelFolder) -> None:
    """7000 x 7000 pixels x 3 classes of float32 is 588 MB, over a record's 512 MiB: refused from the image's size
    (predicting it would take minutes and gigabytes), with the largest image that can be answered."""
    predictor = CountingPredictor(load_model(model, [mx.cpu()]), mx.cpu(), CROP, 10**6)
    app = App(predictor, max_concurrent_transforms=1)
    body = encoded(Image.new("1", (7000, 7000)), "PNG")
    response = call(app, "/invocations", body, content_type="image/png", accept="application/x-recordio-protobuf")
    assert response.status == 413 and "Ask for Accept: image/png" in response.text
    assert f"send an image of at most {(LENGTH_MASK - 1024) // (4 * 3):,} pixels" in response.text
    assert predictor.calls == 0
    assert call(app, "/invocations", encoded(photo(30, 30)), accept="application/x-recordio-protobuf").status == 200
    assert predictor.calls == 1


def test_an_internal_fault_is_a_500_with_its_message(model: ModelFolder, caplog: pytest.LogCaptureFixture) -> None:
    """A predictor on a GPU no machine has (number 99; with or without GPUs): MXNet fails inside the request, the
    worker answers on."""
    net = load_model(model, [mx.cpu()])
    broken = App(Predictor(net, mx.gpu(99), CROP, 10**6), max_concurrent_transforms=1)
    response = call(broken, "/invocations", encoded(photo(30, 30)))
    assert response.status == 500 and response.text.startswith("Internal error: MXNetError")
    assert "Traceback" in caplog.text and "Request to /invocations failed" in caplog.text
    assert call(broken, "/ping", method="GET").status == 200


def test_slide_equals_one_pass_when_the_image_is_one_window(model: ModelFolder) -> None:
    image = photo(CROP, CROP, seed=3)
    one_pass = app_for(model).predictor.probabilities(image)
    slide = predictor_for(model, pixel_budget=1)
    assert slide.pixel_budget == CROP * CROP  # never below one window
    np.testing.assert_allclose(slide.probabilities(image), one_pass, rtol=1e-5, atol=1e-6)


def test_slide_above_the_budget_averages_overlapping_windows(model: ModelFolder) -> None:
    """A 70x90 image in 32x32 windows 22 apart: each pixel is the mean of the windows that cover it."""
    image = photo(70, 90, seed=4)
    predictor = predictor_for(model, pixel_budget=CROP * CROP)
    bands = list(predictor.bands(image))
    assert [y for y, _ in bands] == [0, 22, 38]  # rows 0-21, 22-37, 38-69
    probabilities = predictor.probabilities(image)
    assert probabilities.shape == (CLASSES, 70, 90)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, rtol=1e-5)
    expected = np.zeros_like(probabilities)
    counts = np.zeros((70, 90))
    for y in window_starts(70, CROP, 22):
        for x in window_starts(90, CROP, 22):
            expected[:, y : y + CROP, x : x + CROP] += predictor.score(image[y : y + CROP, x : x + CROP])
            counts[y : y + CROP, x : x + CROP] += 1
    np.testing.assert_allclose(probabilities, expected / counts, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(predictor.classes(image), probabilities.argmax(axis=0))


def test_serve_without_a_model_exits_naming_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "model").mkdir()
    assert main(["serve"], {"SAGEMAKER_BASE_DIR": str(tmp_path)}).code == EXIT_CLIENT_ERROR
    assert str(tmp_path / "model" / "hyperparams.json") in caplog.text


def test_serve_with_weights_missing_exits_naming_them(model: ModelFolder, tmp_path: Path, caplog: Any) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "hyperparams.json").write_bytes((model.path / "hyperparams.json").read_bytes())
    assert main(["serve"], {"SAGEMAKER_BASE_DIR": str(tmp_path)}).code == EXIT_CLIENT_ERROR
    assert "model_best.params nor model_algo-1" in caplog.text


@pytest.mark.parametrize("fault", ["truncated", "other network"])
def test_serve_with_weights_that_do_not_load_exits_2_before_any_worker(
    model: ModelFolder, tmp_path: Path, fault: str
) -> None:
    """Checked by the parent before gunicorn starts: exit 2 and a ClientError naming the file, not workers failing
    to boot (gunicorn's exit 3) or a traceback."""
    folder = tmp_path / "model"
    folder.mkdir()
    hyperparams = json.loads((model.path / "hyperparams.json").read_text())
    weights = (model.path / "model_best.params").read_bytes()
    if fault == "truncated":
        weights = weights[: len(weights) // 2]
    if fault == "other network":
        hyperparams["num_classes"] = "5"
    (folder / "hyperparams.json").write_text(json.dumps(hyperparams))
    (folder / "model_best.params").write_bytes(weights)
    done = subprocess.run(
        [sys.executable, "-m", "semseg", "serve"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": "0"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == EXIT_CLIENT_ERROR, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"ClientError: The weights of the model in {folder} ({folder / 'model_best.params'})" in done.stdout
    assert "Booting worker" not in done.stdout + done.stderr


def test_the_traced_graph_follows_the_image_size(model: ModelFolder) -> None:
    """The server's network is traced (and MKL-DNN-fused) for the size it scores: sizes A, B, A in turn each give
    the imperative network's probabilities."""
    predictor = predictor_for(model)
    assert isinstance(predictor.score, Scorer) and predictor.score.traced
    imperative = Scorer(load_model(model, [mx.cpu()]), mx.cpu())
    for height, width in ((40, 48), (56, 32), (40, 48)):
        image = photo(height, width, seed=height + width)
        np.testing.assert_allclose(predictor.score(image), imperative(image), rtol=1e-4, atol=1e-5)
        assert predictor.score.size == (height, width)


def test_accept_jpeg_is_the_image_blended_with_each_pixels_class_colour(app: App) -> None:
    from semseg.data.palette import OPACITY, PALETTE

    y, x = np.mgrid[0:48, 0:64]
    image = np.stack([y * 5, x * 4, 255 - (x + y) * 2], axis=-1).astype(np.uint8)  # smooth: JPEG keeps it well
    body = encoded(image, "PNG")
    response = call(app, "/invocations", body, content_type="image/png", accept="image/jpeg")
    assert response.status == 200 and response.headers["Content-Type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(response.body))
    assert picture.format == "JPEG" and picture.mode == "RGB" and picture.size == (64, 48)
    classes = png_classes(call(app, "/invocations", body, content_type="image/png").body)
    expected = (1 - OPACITY) * image + OPACITY * PALETTE[classes].astype(np.float64)
    error = np.abs(np.asarray(picture).astype(np.float64) - expected)
    # JPEG's error is largest at the sharp edges between class colours: away from them (a pixel whose 3x3
    # neighbours all have its class) it is small, pixel by pixel; at them, small on average
    padded = np.pad(classes, 1, mode="edge")
    inside = np.all(
        [padded[1 + dy : 49 + dy, 1 + dx : 65 + dx] == classes for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 0
    )
    assert inside.mean() > 0.5, "most pixels are away from a class edge"
    within = error[inside]
    assert within.mean() < 2.0 and np.percentile(within, 99) < 12, (within.mean(), np.percentile(within, 99))
    assert error.mean() < 3.0, error.mean()
    plain = np.abs(np.asarray(picture).astype(np.float64) - image)
    assert plain.mean() > 4 * error.mean()  # the colours are really there
