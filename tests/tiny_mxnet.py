"""Helpers of the tests that need MXNet and GluonCV: tiny networks, batches and loops on CPU contexts, the served
test model's predictor and app, GluonCV-made weights, plain GluonCV evaluation, MXNet's RecordIO reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from gluoncv.model_zoo import resnet50_v1s
from gluoncv.model_zoo.model_store import short_hash
from mxnet import gluon

import semseg.engines.mxnet.gluoncv_import  # noqa: F401  # first: GluonCV refuses to import beside torch 2 otherwise
from semseg.contract.config import Config
from semseg.contract.model_folder import ModelFolder
from semseg.data.dataset import read_image, read_mask
from semseg.engines.mxnet import optim
from semseg.engines.mxnet.loop import Loop
from semseg.engines.mxnet.network import load_model
from semseg.engines.mxnet.predict import Predictor, normalize
from semseg.fit.loop import LoopSettings
from semseg.serving.app import App
from semseg.serving.record_pb2 import Record  # type: ignore[attr-defined]
from tests.helpers import confusion

CONFIG = Config(
    num_classes=3, num_training_samples=4, crop_size=32, use_pretrained_model=False, mini_batch_size=4, epochs=2
)


ONE = [mx.cpu(0)]


TWO = [mx.cpu(0), mx.cpu(1)]


class NoHooks:
    def epoch_start(self, epoch: int) -> None: ...

    def progress(self, *args: Any) -> None: ...

    def epoch_end(self, *args: Any) -> None: ...


def batch(size: int, crop: int = 32, seed: int = 0) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (size, crop, crop, 3))
    masks = rng.integers(0, 3, (size, crop, crop))
    masks[0, :4] = 255  # some ignored pixels, unevenly spread over the devices
    return mx.nd.array(images, dtype="uint8"), mx.nd.array(masks, dtype="uint8")


def loop_on(net: gluon.HybridBlock, contexts: list[mx.Context], config: Config) -> Loop:
    trainer = gluon.Trainer(net.collect_params(), "sgd", optim.optimizer_params(config), kvstore="device")
    return Loop(net, trainer, contexts, LoopSettings.of(config))


def train_on(loop: Loop, batches: list[tuple[mx.nd.NDArray, mx.nd.NDArray]]) -> float:
    """One pass of the loop over `batches`; the mean loss per sample."""
    result = loop.train_epoch(batches, 0, NoHooks(), progress_every=10**9)
    assert result is not None
    return result[0]


def weights(net: gluon.Block) -> dict[str, np.ndarray]:
    return {name: p.data(mx.cpu(0)).asnumpy() for name, p in net._collect_params_with_prefix().items()}


def assert_same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray], rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


class TinyNet(gluon.HybridBlock):
    """A network without batch statistics, so any split of a batch must give the same step."""

    def __init__(self) -> None:
        super().__init__()
        self.head = gluon.nn.Conv2D(3, 3, padding=1, in_channels=3)
        self.aux = gluon.nn.Conv2D(3, 1, in_channels=3)

    def hybrid_forward(self, F: Any, x: Any) -> tuple[Any, Any]:
        return self.head(x), self.aux(x)


def predictor_for(model: ModelFolder, pixel_budget: int = 10**6) -> Predictor:
    return Predictor(load_model(model, [mx.cpu()]), mx.cpu(), model.config.crop_size, pixel_budget)


def app_for(model: ModelFolder, pixel_budget: int = 10**6) -> App:
    return App(predictor_for(model, pixel_budget), max_concurrent_transforms=2)


def decode_record(body: bytes, tmp_path: Path) -> np.ndarray:
    """As the AWS notebook: MXNet's RecordIO reader, then the Record's target reshaped by its shape."""
    path = tmp_path / "response.rec"
    path.write_bytes(body)
    reader = mx.recordio.MXRecordIO(str(path), "r")
    record = Record()
    record.ParseFromString(reader.read())
    assert reader.read() is None  # exactly one record
    shape = list(record.features["shape"].int32_tensor.values)
    assert list(record.features["target"].float32_tensor.shape) == shape
    return np.reshape(np.array(record.features["target"].float32_tensor.values, dtype=np.float32), shape)


def fake_imagenet_weights(root: Path, name: str = "resnet50_v1s", net: mx.gluon.Block | None = None) -> Path:
    """A weight file with GluonCV's name and resnet50_v1s's layout (real weights cannot be downloaded here)."""
    mx.random.seed(11)
    net = net or resnet50_v1s(pretrained=False)
    net.initialize(mx.init.Normal(0.05))
    net(mx.nd.zeros((1, 3, 32, 32)))
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}-{short_hash(name)}.params"
    net.save_parameters(str(path))
    return path


def evaluate_plain(net_fn, base: Path, num_classes: int, crop: int) -> float:
    """mIOU of `net_fn(x)` over the validation channel, centre-cropped as the job validates."""
    from semseg.data.transforms import center_crop

    batches = []
    images = sorted((base / "input" / "data" / "validation").glob("*.jpg"))
    for path in images:
        image = read_image(path)
        mask = read_mask(base / "input" / "data" / "validation_annotation" / (path.stem + ".png"))
        image, mask = center_crop(crop)(image, mask, np.random.default_rng(0))
        x = normalize(mx.nd.array(image[None], dtype="uint8"))
        batches.append((mask, net_fn(x).argmax(axis=1).asnumpy()))
    return confusion(num_classes, *batches).miou
