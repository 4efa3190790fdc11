"""Test-time augmentation in the server: `tta=flip` equals plain GluonCV's `predict` on the image and its mirror,
softmax averaged, on both engines' predictors; scales average the copies resized back; bad attributes are 400s
naming the attribute; SEMSEG_TTA sets the default; requests without the header are answered as before."""

from __future__ import annotations

from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
import torch
from gluoncv.model_zoo import FCN

from semseg.contract.model_folder import ModelFolder
from semseg.engines import Predictor
from semseg.engines.mxnet.predict import normalize
from semseg.engines.torch.gluon import load_model_folder
from semseg.engines.torch.network import SegmentationNet
from semseg.engines.torch.predict import FLOAT32
from semseg.engines.torch.predict import Predictor as TorchPredictor
from semseg.serving import tta
from semseg.serving.app import App
from semseg.serving.codecs import encode_png
from tests.helpers import CLASSES, CROP, call, encoded, photo, png_classes
from tests.tiny_mxnet import app_for, decode_record, predictor_for

PROBABILITIES = "application/x-protobuf"


def gluoncv_probabilities(folder: ModelFolder, image: np.ndarray) -> np.ndarray:
    """Plain GluonCV: its FCN with the model's weights, `predict` at the image's size, softmax: [C, H, W]."""
    net = FCN(CLASSES, backbone="resnet50", aux=False, pretrained_base=False, crop_size=CROP)
    net.load_parameters(str(folder.weights), ignore_extra=True)
    x = normalize(mx.nd.array(image[np.newaxis], dtype="uint8"))
    return mx.nd.softmax(net.predict(x)[0], axis=1)[0].asnumpy()


def flip_reference(folder: ModelFolder, image: np.ndarray) -> np.ndarray:
    mirrored = gluoncv_probabilities(folder, np.ascontiguousarray(image[:, ::-1]))
    return (gluoncv_probabilities(folder, image) + mirrored[:, :, ::-1]) / 2


def torch_predictor(folder: ModelFolder, pixel_budget: int = 10**6) -> TorchPredictor:
    net = SegmentationNet("fcn", "resnet-50", CLASSES)
    load_model_folder(net, folder)
    net.eval()
    return TorchPredictor(net, torch.device("cpu"), folder, pixel_budget, FLOAT32)


def test_flip_on_mxnet_equals_gluoncv_on_the_image_and_its_mirror(model: ModelFolder, tmp_path: Path) -> None:
    image = photo(37, 45, seed=2)
    app = app_for(model)
    body = encoded(image, "PNG")
    response = call(
        app, "/invocations", body, content_type="image/png", accept=PROBABILITIES,
        x_amzn_sagemaker_custom_attributes="tta=flip",
    )  # fmt: skip
    assert response.status == 200, response.text
    expected = flip_reference(model, image)
    probabilities = decode_record(response.body, tmp_path)[0]
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)
    png = call(app, "/invocations", body, content_type="image/png", x_amzn_sagemaker_custom_attributes="tta=flip")
    np.testing.assert_array_equal(png_classes(png.body), expected.argmax(axis=0))
    plain = call(app, "/invocations", body, content_type="image/png", accept=PROBABILITIES)
    assert not np.allclose(decode_record(plain.body, tmp_path)[0], probabilities, atol=1e-4)  # the flip did something


def test_flip_on_torch_equals_gluoncv_on_the_image_and_its_mirror(model: ModelFolder) -> None:
    image = photo(37, 45, seed=2)
    predictor = torch_predictor(model)
    expected = flip_reference(model, image)
    flip = tta.parse("tta=flip")
    np.testing.assert_allclose(tta.probabilities(predictor, image, flip), expected, rtol=1e-3, atol=1e-5)
    agree = (tta.classes(predictor, image, flip) == expected.argmax(axis=0)).mean()
    assert agree > 0.99


@pytest.mark.parametrize("engine", ["mxnet", "torch"])
def test_scales_and_flip_average_every_copy_resized_back(model: ModelFolder, engine: str) -> None:
    image = photo(40, 48, seed=3)
    predictor: Predictor = predictor_for(model) if engine == "mxnet" else torch_predictor(model)
    copies = []
    for height, width in ((20, 24), (40, 48)):  # scales 0.5 and 1
        scaled = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        for source, back in ((scaled, lambda p: p), (np.ascontiguousarray(scaled[:, ::-1]), lambda p: p[:, :, ::-1])):
            scores = back(predictor.probabilities(source))
            copies.append(np.stack([cv2.resize(np.ascontiguousarray(c), (48, 40)) for c in scores]))
    augmentation = tta.parse("tta=flip;scales=0.5,1")
    np.testing.assert_allclose(tta.probabilities(predictor, image, augmentation), np.mean(copies, axis=0), rtol=1e-5)
    np.testing.assert_array_equal(tta.classes(predictor, image, augmentation), np.mean(copies, axis=0).argmax(axis=0))


def test_flip_above_the_pixel_budget_goes_by_windows_band_by_band(model: ModelFolder) -> None:
    image = photo(70, 90, seed=4)
    predictor = predictor_for(model, pixel_budget=CROP * CROP)
    assert not predictor.fits(70, 90)
    flip = tta.parse("tta=flip")
    expected = tta.probabilities(predictor, image, flip)  # the whole arrays, windows for each copy
    mirrored = predictor.probabilities(np.ascontiguousarray(image[:, ::-1]))[:, :, ::-1]
    np.testing.assert_allclose(expected, (predictor.probabilities(image) + mirrored) / 2, rtol=1e-6)
    np.testing.assert_array_equal(tta.classes(predictor, image, flip), expected.argmax(axis=0))


def test_requests_without_the_header_are_answered_as_before(model: ModelFolder) -> None:
    app = app_for(model)
    image = photo(33, 29, seed=5)
    response = call(app, "/invocations", encoded(image, "PNG"), content_type="image/png")
    assert response.status == 200 and response.body == encode_png(app.predictor.classes(image))
    scale_one = call(
        app, "/invocations", encoded(image, "PNG"), content_type="image/png",
        x_amzn_sagemaker_custom_attributes="scales=1; tta=none",
    )  # fmt: skip
    assert scale_one.body == response.body


def test_semseg_tta_is_the_default_and_a_header_overrides_it(model: ModelFolder, tmp_path: Path) -> None:
    plain_app = app_for(model)
    app = App(plain_app.predictor, 1, augmentation=tta.parse("tta=flip"))
    image = photo(30, 34, seed=6)
    body = encoded(image, "PNG")
    default = call(app, "/invocations", body, content_type="image/png", accept=PROBABILITIES)
    np.testing.assert_allclose(decode_record(default.body, tmp_path)[0], flip_reference(model, image), rtol=1e-4)
    off = call(
        app, "/invocations", body, content_type="image/png", accept=PROBABILITIES,
        x_amzn_sagemaker_custom_attributes="tta=none",
    )  # fmt: skip
    plain = call(plain_app, "/invocations", body, content_type="image/png", accept=PROBABILITIES)
    assert off.body == plain.body


@pytest.mark.parametrize(
    ("attributes", "named"),
    [
        ("tta=mirror", "tta='mirror' is not accepted; use tta=flip or tta=none"),
        ("scales=0", "scales='0' has a factor out of range"),
        ("scales=a,b", "scales='a,b' is not a list of numbers"),
        ("scales=1,1", "scales='1,1'"),
        ("scales=" + ",".join(str(1 + i / 10) for i in range(9)), "up to 8 different factors"),
        ("scale=1.5", "'scale=1.5' is not an attribute this server reads; it accepts tta=flip"),
        ("flip", "'flip' is not an attribute"),
    ],
)
def test_bad_attributes_are_400s_naming_the_attribute(model: ModelFolder, attributes: str, named: str) -> None:
    body = encoded(photo(20, 20), "PNG")
    response = call(
        app_for(model), "/invocations", body, content_type="image/png", x_amzn_sagemaker_custom_attributes=attributes
    )
    assert response.status == 400
    assert "X-Amzn-SageMaker-Custom-Attributes" in response.text and named in response.text
