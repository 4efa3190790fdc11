"""`algorithm=deeplabv3plus` end to end: a job of each engine trains it with the managed log lines and artifacts,
the README's snippet loads its files, and `serve` answers from it on both engines (PNG, probabilities, overlay, TTA)
with the same classes. The networks' equality across engines is tested with the others' in test_torch_engine."""

from __future__ import annotations

import io
import json

import mxnet as mx
import numpy as np
from PIL import Image

from semseg.contract.model_folder import read_model_folder
from semseg.engines.mxnet.network import load_model
from semseg.engines.mxnet.predict import Predictor as MXNetPredictor
from semseg.engines.record import PredictorSettings
from semseg.engines.torch.predict import load_predictor
from semseg.serving.app import App
from tests.helpers import call, photo

ARTIFACTS = {"hyperparams.json", "model_algo-1", "model_best.params", "model-symbol.json", "model-0000.params"}


def test_an_mxnet_job_trains_it_the_readme_loads_it_and_both_engines_serve_it(train_job) -> None:
    run = train_job({"algorithm": "deeplabv3plus", "epochs": 2})
    assert run.code == 0, run.failure
    assert run.model_files == ARTIFACTS and len(run.metric("validation:mIOU")) == 2
    saved = json.loads((run.base / "model" / "hyperparams.json").read_text())
    assert saved["algorithm"] == "deeplabv3plus"

    from semseg.engines.mxnet.deeplabv3plus import DeepLabV3Plus  # the README's snippet

    net = DeepLabV3Plus(3, backbone="resnet50", pretrained_base=False, crop_size=int(saved["crop_size"]))
    net.load_parameters(str(run.base / "model" / "model_algo-1"))
    x = mx.nd.array(np.random.default_rng(0).normal(size=(1, 3, 32, 32)))
    folder = read_model_folder(run.base / "model", "the test's model")
    ours = load_model(folder, [mx.cpu()], aux=True)
    ours.load_parameters(str(run.base / "model" / "model_algo-1"))
    np.testing.assert_allclose(net(x)[0].asnumpy(), ours(x)[0].asnumpy(), rtol=1e-5, atol=1e-5)

    budget = 40 * 40  # the larger image goes by windows
    apps = {
        "mxnet": App(MXNetPredictor(load_model(folder, [mx.cpu()]), mx.cpu(), folder.config.crop_size, budget), 1),
        "torch": App(load_predictor(folder, "cpu", PredictorSettings(budget)), 1),
    }
    for height, width in ((32, 32), (41, 53), (70, 90)):
        png = io.BytesIO()
        Image.fromarray(photo(height, width, seed=height)).save(png, format="PNG")
        answers = {}
        for engine, app in apps.items():
            for accept in ("image/jpeg", "application/x-protobuf"):
                answer = call(app, "/invocations", png.getvalue(), content_type="image/png", accept=accept)
                assert answer.status == 200 and answer.headers["Content-Type"] == accept, answer.text
            answer = call(app, "/invocations", png.getvalue(), content_type="image/png", accept="image/png",
                          x_amzn_sagemaker_custom_attributes="tta=flip")  # fmt: skip
            assert answer.status == 200, answer.text
            answers[engine] = np.asarray(Image.open(io.BytesIO(answer.body)))
        assert answers["torch"].shape == (height, width)
        assert (answers["torch"] == answers["mxnet"]).mean() >= 0.99


def test_a_torch_job_trains_it_into_files_mxnet_loads(train_job) -> None:
    run = train_job({"algorithm": "deeplabv3plus", "epochs": 2}, env={"SEMSEG_ENGINE": "torch"})
    assert run.code == 0, run.failure
    assert run.model_files == ARTIFACTS
    assert len(run.metric("train:loss")) == 2 and len(run.metric("validation:mIOU")) == 2
    folder = read_model_folder(run.base / "model", "the test's model")
    net = load_model(folder, [mx.cpu()])  # the MXNet network, from the torch engine's GluonCV file
    assert net(mx.nd.zeros((1, 3, 32, 32)))[0].shape == (1, 3, 32, 32)
