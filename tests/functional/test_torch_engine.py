"""The PyTorch engine (SEMSEG_ENGINE=torch) against MXNet/GluonCV on the CPU: the same networks, the same update
rules and schedules, BatchNorm's running statistics, and jobs whose artifacts are GluonCV's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
import torch

from semseg.contract.config import Config
from semseg.contract.model_folder import read_model_folder
from semseg.engines.mxnet import optim
from semseg.engines.mxnet.network import build_model, set_output_size
from semseg.engines.torch.convert import from_gluon, to_gluon
from semseg.engines.torch.gluon import load_model_folder
from semseg.engines.torch.network import MXNetBatchNorm, SegmentationNet
from semseg.engines.torch.optim import MXNetOptimizer
from semseg.fit.schedule import Schedule

TORCH = {"SEMSEG_ENGINE": "torch"}


def randomized(net: mx.gluon.Block, seed: int = 0) -> dict[str, np.ndarray]:
    """Random BatchNorm statistics and affine parameters (fresh ones are 0/1 and would hide a mix-up)."""
    rng = np.random.default_rng(seed)
    for name, param in net._collect_params_with_prefix().items():
        if name.endswith("running_mean") or name.endswith("beta"):
            param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape)))
        elif name.endswith("running_var"):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif name.endswith("gamma"):
            param.set_data(mx.nd.array(rng.normal(0.5, 0.1, param.shape)))
    return {name: p.data().asnumpy() for name, p in net._collect_params_with_prefix().items()}


@pytest.mark.parametrize("backbone", ["resnet-50", "resnet-101"])
@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab", "deeplabv3plus"])
def test_networks_reproduce_gluoncv(algorithm: str, backbone: str) -> None:
    config = Config(
        num_classes=5, num_training_samples=4, crop_size=48, algorithm=algorithm, backbone=backbone,
        use_pretrained_model=False,
    )  # fmt: skip
    gluon = build_model(config, [mx.cpu()])
    gluon(mx.nd.zeros((1, 3, 48, 48)))
    arrays = randomized(gluon)
    net = SegmentationNet(algorithm, backbone, 5).eval()
    assert from_gluon(net, arrays) == []
    assert set(to_gluon(net)) == set(arrays)
    x = np.random.default_rng(1).normal(size=(2, 3, 48, 48)).astype("float32")
    with torch.no_grad():
        ours = [o.numpy() for o in net(torch.from_numpy(x))]
    theirs = [o.asnumpy() for o in gluon(mx.nd.array(x))]
    for mine, reference in zip(ours, theirs, strict=True):  # main head and aux head
        assert np.abs(mine - reference).max() / np.abs(reference).max() < 1e-4
        assert (mine.argmax(axis=1) == reference.argmax(axis=1)).all()
    set_output_size(gluon, 41, 53)  # a size of no multiple of 8: the decoder's stride-4 features are 11 x 14
    x = np.random.default_rng(2).normal(size=(1, 3, 41, 53)).astype("float32")
    with torch.no_grad():
        mine = net(torch.from_numpy(x))[0].numpy()
    reference = gluon(mx.nd.array(x))[0].asnumpy()
    assert mine.shape == reference.shape == (1, 5, 41, 53)
    assert np.abs(mine - reference).max() / np.abs(reference).max() < 1e-4


def test_batchnorm_running_statistics_and_gradients_are_mxnets() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype("float32")  # n = 8: biased != unbiased
    g = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    gluon = mx.gluon.nn.BatchNorm(in_channels=3)
    gluon.initialize()
    xm = mx.nd.array(x)
    xm.attach_grad()
    with mx.autograd.record():
        ym = gluon(xm)
    ym.backward(mx.nd.array(g))
    ours = MXNetBatchNorm(3)
    xt = torch.from_numpy(x).requires_grad_()
    yt = ours(xt)
    yt.backward(torch.from_numpy(g))
    assert ours.running_var is not None and ours.running_mean is not None and xt.grad is not None
    assert np.allclose(ours.running_var.numpy(), gluon.running_var.data().asnumpy(), atol=1e-7)
    assert np.allclose(ours.running_mean.numpy(), gluon.running_mean.data().asnumpy(), atol=1e-7)
    assert np.allclose(yt.detach().numpy(), ym.asnumpy(), atol=1e-6)
    assert np.allclose(xt.grad.numpy(), xm.grad.asnumpy(), atol=1e-6)


OPTIMIZER_SETTINGS = {
    "sgd": {"momentum": 0.9},
    "nag": {"momentum": 0.9},
    "adam": {},
    "adagrad": {},
    "rmsprop": {"gamma1": 0.95, "gamma2": 0.8},
}


@pytest.mark.parametrize("kind", sorted(OPTIMIZER_SETTINGS))
def test_optimizer_updates_are_mxnets(kind: str) -> None:
    """Three updates with a changing learning rate, weight decay, rescale_grad and a head lr_mult of 10."""
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(5,)).astype("float32")]
    grads = [[rng.normal(size=w.shape).astype("float32") for w in start] for _ in range(3)]
    settings = OPTIMIZER_SETTINGS[kind]
    extra = {"centered": True} if kind == "rmsprop" else {}
    reference = mx.optimizer.create(kind, learning_rate=0.1, wd=1e-3, rescale_grad=0.25, **settings, **extra)
    reference.set_lr_mult({1: 10.0})
    updater = mx.optimizer.get_updater(reference)
    theirs = [mx.nd.array(w) for w in start]
    ours = [torch.tensor(w) for w in start]
    groups = [{"params": [ours[0]], "lr_mult": 1.0}, {"params": [ours[1]], "lr_mult": 10.0}]
    optimizer = MXNetOptimizer(groups, kind, lr=0.1, wd=1e-3, **settings)  # type: ignore[arg-type]
    optimizer.rescale_grad = 0.25
    for step, lr in zip(grads, [0.1, 0.05, 0.02], strict=True):
        reference.lr = lr
        for i, (weight, grad) in enumerate(zip(theirs, step, strict=True)):
            updater(i, mx.nd.array(grad), weight)
        for weight, grad in zip(ours, step, strict=True):
            weight.grad = torch.tensor(grad)
        optimizer.set_lr(lr)
        optimizer.step()
    for mine, reference_weight in zip(ours, theirs, strict=True):
        expected = reference_weight.asnumpy()
        assert np.abs(mine.numpy() - expected).max() / np.abs(expected).max() < 1e-5
        assert not np.allclose(expected, start[0] if expected.shape == start[0].shape else start[1])


@pytest.mark.parametrize(
    "scheduler, extra",
    [("poly", {}), ("cosine", {}), ("step", {"lr_scheduler_step": "1,3", "lr_scheduler_factor": "0.5"})],
)
def test_schedules_are_mxnets(scheduler: str, extra: dict[str, str]) -> None:
    config = Config.from_hyperparameters(
        {"num_classes": "3", "num_training_samples": "12", "mini_batch_size": "4", "epochs": "5",
         "learning_rate": "0.1", "lr_scheduler": scheduler, **extra}
    )  # fmt: skip
    reference = optim.lr_scheduler(config)
    ours = Schedule(config)
    for update in range(1, 20):  # 15 updates in the run, and past its end
        assert ours(update) == pytest.approx(reference(update), rel=1e-9, abs=1e-12), update


@pytest.mark.slow
def test_models_seed_jobs_across_engines(tmp_path: Path, train_job) -> None:
    """An MXNet model seeds a torch job, whose model seeds an MXNet job (three jobs, both directions)."""
    from semseg.example import make_job
    from tests.helpers import model_tar

    previous = train_job({"epochs": 1}, env={"SEMSEG_ENGINE": "mxnet"}, images=4)
    assert previous.code == 0, previous.failure
    for engine in ("torch", "mxnet"):
        base = make_job(tmp_path / f"seeded-{engine}", images=4, size=32, hyperparameters={"epochs": 1})
        (base / "input" / "data" / "model").mkdir()
        model_tar(previous.base / "model", base / "input" / "data" / "model" / "model.tar.gz")
        seeded = train_job(base=base, env={"SEMSEG_ENGINE": engine})
        assert seeded.code == 0, seeded.failure
        assert any(m.startswith("Incremental training: starting from") for m in seeded.messages)
        assert any(m.startswith("Loaded") and "model_best.params" in m for m in seeded.messages)
        previous = seeded


@pytest.mark.slow
def test_two_processes_train_one_job(tmp_path: Path) -> None:
    """SEMSEG_CPU_DEVICES=2: two gloo processes under DDP, started by torch's elastic launcher; one speaks."""
    from semseg.example import make_job

    base = make_job(tmp_path / "job", images=8, size=32, hyperparameters={"epochs": 2, "mini_batch_size": 4})
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "SEMSEG_CPU_DEVICES": "2", **TORCH}
    done = subprocess.run(
        [sys.executable, "-m", "semseg", "train"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Starting 2 training processes (cpu, torch.distributed gloo)" in done.stdout
    assert done.stdout.count(", validation mIOU: ") == 2, "the first process alone writes the metric lines"
    assert {"model_algo-1", "model_best.params", "model-symbol.json"} <= {p.name for p in (base / "model").iterdir()}


def test_the_imagenet_backbone_comes_from_gluoncvs_file(tmp_path: Path) -> None:
    from semseg.engines.torch.gluon import load_backbone
    from semseg.engines.weights import backbone_weights_file
    from tests.tiny_mxnet import fake_imagenet_weights

    weights = fake_imagenet_weights(tmp_path / "models")
    net = SegmentationNet("fcn", "resnet-50", 3)
    load_backbone(net, backbone_weights_file("resnet-50", tmp_path / "models"))
    saved = mx.nd.load(str(weights))
    state = net.state_dict()
    for gluon_name, torch_name in (
        ("conv1.0.weight",) * 2,
        ("layer4.2.conv3.weight",) * 2,
        ("bn1.gamma", "bn1.weight"),
    ):
        assert np.array_equal(state[torch_name].numpy(), saved[gluon_name].asnumpy()), gluon_name
    assert not np.array_equal(state["head.block.0.weight"].numpy(), 0)  # the heads keep their initialisation


def test_the_torch_loop_runs_without_mxnet(tmp_path: Path) -> None:
    """Where only torch, numpy, OpenCV and Pillow are installed (a torch-only machine): MXNet and GluonCV blocked."""
    from semseg.example import make_job

    base = make_job(tmp_path / "job", images=4, size=32)
    code = f"""
import sys
sys.modules["mxnet"] = None
sys.modules["gluoncv"] = None
from pathlib import Path
import torch
from semseg.contract.config import Config
from semseg.engines.torch.loader import Loader
from semseg.data.pipeline import build_loaders
from semseg.contract.job import JobPaths, load_job
from semseg.engines.torch.loop import Loop
from semseg.engines.torch.network import SegmentationNet
from semseg.engines.torch.optim import trainer_for
from semseg.fit.loop import LoopSettings, NoHooks

config = Config(num_classes=3, num_training_samples=4, crop_size=32, use_pretrained_model=False)
job = load_job(JobPaths(Path({str(base)!r})))
train, validation = build_loaders(job, config, 0, Loader(0))
net = SegmentationNet("fcn", "resnet-50", 3)
loop = Loop(net, trainer_for(net, config), torch.device("cpu"), LoopSettings.of(config))
train.set_epoch(0)
loss, _ = loop.train_epoch(train, 0, NoHooks(), 100)
matrix = loop.evaluate(validation, False)
assert not any(name.startswith(("mxnet", "gluoncv")) and sys.modules[name] is not None for name in sys.modules)
print("ok", loss, matrix.miou)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")


def test_the_heads_learn_ten_times_faster_as_in_gluoncv() -> None:
    net = SegmentationNet("psp", "resnet-50", 3)
    backbone, heads = net.param_groups(0.01)
    names = {id(p): name for name, p in net.named_parameters()}
    assert backbone["lr_mult"] == 1.0 and heads["lr_mult"] == 10.0
    head_names = [names[id(p)] for p in heads["params"]]  # type: ignore[attr-defined]
    assert head_names and all(n.startswith(("head.", "auxlayer.")) for n in head_names)
    assert not any(names[id(p)].startswith(("head.", "auxlayer.")) for p in backbone["params"])  # type: ignore[attr-defined]
    assert len(head_names) + len(backbone["params"]) == len(names)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_torch_job_needs_no_mxnet_but_for_the_symbol_file(tmp_path: Path) -> None:
    """The whole job (GluonCV files in and out through numpy) where MXNet cannot be imported: every artifact but the
    MXNet symbol file, which a warning names."""
    from semseg.example import make_job

    base = make_job(tmp_path / "job", images=4, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 2})
    code = f"""
import sys
sys.modules["mxnet"] = None
sys.modules["gluoncv"] = None
from semseg.cli import main
outcome = main(["train"], {{"SAGEMAKER_BASE_DIR": {str(base)!r}, "SEMSEG_ENGINE": "torch"}})
assert not any(name.startswith(("mxnet", "gluoncv")) and sys.modules[name] is not None for name in sys.modules)
sys.exit(outcome.code)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "No symbol file (model-symbol.json): mxnet, which writes it, is not installed" in done.stdout
    written = {p.name for p in (base / "model").iterdir()}
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= written and "model-symbol.json" not in written
    net = SegmentationNet("fcn", "resnet-50", 3)
    load_model_folder(net, read_model_folder(base / "model", "the job's model"))  # GluonCV's names, all of them
