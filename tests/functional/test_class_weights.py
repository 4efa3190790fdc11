"""Class weights in both engines' losses: equal to a numpy reference (main and aux heads), exact however a batch
is split (one vs two MXNet contexts; one vs two torch processes, labelled pixels unevenly shared), and a
weighted job learns the rare classes of an imbalanced generated set better than the plain loss."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
import torch
import torch.multiprocessing as torch_mp
from mxnet import gluon

from semseg.data.labels import IGNORE
from semseg.engines.mxnet import optim
from semseg.engines.mxnet.loop import Loop
from semseg.engines.mxnet.loss import SegmentationLoss as MXNetLoss
from semseg.engines.torch.loss import SegmentationLoss as TorchLoss
from semseg.example import IMBALANCED_CLASSES, LEARNING_HYPERPARAMETERS, RARE_CLASSES, make_job
from semseg.fit.class_weights import pixel_weights
from semseg.fit.loop import LoopSettings
from tests.functional import ddp_loss_worker
from tests.helpers import free_port
from tests.tiny_mxnet import CONFIG, ONE, TWO, TinyNet, batch, train_on, weights

CLASSES = 4
EPOCHS = 16  # 128 updates: the rare classes start to show (rare-class IoU 0 plain, 0.076 weighted here)
AUX = 0.5
WEIGHTS = np.array([0.2, 1.0, 3.0, 7.5], np.float32)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def reference(
    pred: np.ndarray, aux: np.ndarray, labels: np.ndarray, weights: np.ndarray | None
) -> tuple[float, np.ndarray]:
    """(objective, per-sample mean weighted pixel loss) in float64: sum w_y (nll + AUX nll_aux) / sum w_y."""
    table = pixel_weights(CLASSES, weights).astype(np.float64)
    safe = np.where(labels == IGNORE, 0, labels)

    def nll(x: np.ndarray) -> np.ndarray:
        return -np.take_along_axis(log_softmax(x.astype(np.float64)), safe[:, None], axis=1)[:, 0]

    pixels = table[labels] * (nll(pred) + AUX * nll(aux))
    return float(pixels.sum() / table[labels].sum()), pixels.mean(axis=(1, 2))


def logits(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pred = rng.normal(0, 2, (3, CLASSES, 6, 7)).astype(np.float32)
    aux = rng.normal(0, 2, (3, CLASSES, 6, 7)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (3, 6, 7))
    labels[0, :3] = IGNORE
    return pred, aux, labels


@pytest.mark.parametrize("class_weights", [None, WEIGHTS], ids=["unweighted", "weighted"])
def test_the_mxnet_loss_equals_numpy(class_weights: np.ndarray | None) -> None:
    pred, aux, labels = logits()
    table = pixel_weights(CLASSES, class_weights)
    scale = mx.nd.array([1.0 / table[labels].sum()])
    objective, per_sample = MXNetLoss(AUX, IGNORE)(
        mx.nd.array(pred), mx.nd.array(aux), mx.nd.array(labels, dtype="float32"), scale, mx.nd.array(table)
    )
    expected, expected_per_sample = reference(pred, aux, labels, class_weights)
    assert objective.asscalar() == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(per_sample.asnumpy(), expected_per_sample, rtol=1e-5)


@pytest.mark.parametrize("class_weights", [None, WEIGHTS], ids=["unweighted", "weighted"])
def test_the_torch_loss_equals_numpy(class_weights: np.ndarray | None) -> None:
    pred, aux, labels = logits()
    loss = TorchLoss(CLASSES, AUX, torch.device("cpu"), class_weights)
    target = torch.from_numpy(labels).long()
    pixels = loss.pixels((torch.from_numpy(pred), torch.from_numpy(aux)), target)
    expected, expected_per_sample = reference(pred, aux, labels, class_weights)
    assert float(loss.objective(pixels, target)) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(pixels.mean(dim=(1, 2)).numpy(), expected_per_sample, rtol=1e-5)


def mxnet_step(contexts: list[mx.Context], class_weights: np.ndarray | None) -> tuple[float, dict[str, np.ndarray]]:
    """One SGD step of the MXNet loop on three images: (mean loss per sample, the weights after it)."""
    mx.random.seed(1)
    net = TinyNet()
    net.initialize(mx.init.Xavier(), ctx=contexts)
    trainer = gluon.Trainer(net.collect_params(), "sgd", optim.optimizer_params(CONFIG), kvstore="device")
    loop = Loop(net, trainer, contexts, LoopSettings(3, 32, 3, 10**6, class_weights=class_weights, aux_weight=AUX))
    return train_on(loop, [batch(3, seed=3)]), weights(net)


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_a_weighted_batch_on_two_mxnet_contexts_steps_like_one() -> None:
    """Three images, split 2 + 1, the first with many ignored pixels: the weighted counts differ per device."""
    (loss_one, w_one), (loss_two, w_two) = (mxnet_step(contexts, WEIGHTS[:3]) for contexts in (ONE, TWO))
    assert loss_two == pytest.approx(loss_one, rel=1e-6)
    assert_same(w_one, w_two)


def test_only_the_ratios_of_the_weights_matter_on_both_engines() -> None:
    """The loss is normalised by the weighted count of labelled pixels: weights times 10 make the same step
    (an unweighted normaliser would make it 10 times larger), and unlike the unweighted one."""
    _, plain = mxnet_step(ONE, None)
    _, weighted = mxnet_step(ONE, WEIGHTS[:3])
    _, tenfold = mxnet_step(ONE, WEIGHTS[:3] * 10)
    assert_same(weighted, tenfold)
    assert not np.allclose(plain["head.weight"], weighted["head.weight"], rtol=1e-4)
    pred, _, labels = logits()
    images = pred[:, :3]
    torch_weighted = ddp_loss_worker.gradients(images, labels, WEIGHTS, CLASSES)
    assert_same(torch_weighted, ddp_loss_worker.gradients(images, labels, WEIGHTS * 10, CLASSES))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_a_batch_on_two_torch_processes_has_the_gradient_of_one(tmp_path: Path, weighted: bool) -> None:
    """Four images split 3 + 1; the three share most of the ignored pixels, so the processes' (weighted)
    labelled pixel counts differ a lot: DDP's average must still be the gradient of the whole batch."""
    rng = np.random.default_rng(4)
    images = rng.normal(size=(4, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (4, 8, 8))
    labels[:3, :6] = IGNORE
    np.savez(tmp_path / "batch.npz", images=images, labels=labels, weights=WEIGHTS)
    class_weights = WEIGHTS if weighted else None
    whole = ddp_loss_worker.gradients(images, labels, class_weights, CLASSES)
    context = torch_mp.get_context("spawn")
    args = (2, free_port(), str(tmp_path), [0, 3, 4], CLASSES, weighted)
    processes = [context.Process(target=ddp_loss_worker.run, args=(rank, *args)) for rank in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    split = np.load(tmp_path / "ddp.npz")
    assert set(split.files) == set(whole)
    for name, grad in whole.items():
        np.testing.assert_allclose(split[name], grad, rtol=1e-5, atol=1e-7, err_msg=name)


def validation_iou(base: Path) -> np.ndarray:
    """Per-class IoU of the job's best weights on its validation images, predicted whole as the server does."""
    from PIL import Image

    from semseg.contract.model_folder import read_model_folder
    from semseg.engines.mxnet.network import load_model
    from semseg.engines.mxnet.predict import Predictor
    from semseg.measures.confusion import ConfusionMatrix

    folder = read_model_folder(base / "model", "the test's model")
    predictor = Predictor(load_model(folder, [mx.cpu()]), mx.cpu(), folder.config.crop_size, 10**6)
    matrix = ConfusionMatrix(IMBALANCED_CLASSES)
    for path in sorted((base / "input/data/validation").glob("*.jpg")):
        mask = np.asarray(Image.open(base / "input/data/validation_annotation" / f"{path.stem}.png"))
        matrix.add(mask, predictor.classes(np.asarray(Image.open(path).convert("RGB"))), IGNORE)
    return matrix.iou


@pytest.mark.slow
@pytest.mark.serial  # two jobs at once, one core each
def test_a_weighted_job_learns_the_rare_classes_the_plain_loss_misses(tmp_path: Path) -> None:
    """The generated street-like set (1.4% of the pixels in three thin or small classes), from scratch, seed 0,
    both jobs at once through `python -m semseg train`, each on one OpenMP thread, so each repeats to the bit
    (benchmarks/RESULTS.md, "Imbalanced data": rare-class IoU 0 plain in every run, 0.07 to 0.14 weighted)."""
    hp = {**LEARNING_HYPERPARAMETERS, "epochs": EPOCHS, "num_training_samples": 32, "validation_mini_batch_size": 1}
    jobs = []
    for name, extra in (("plain", {}), ("weighted", {"class_weights": "auto"})):
        base = make_job(
            tmp_path / name, images=32, validation_images=8, size=64, classes=IMBALANCED_CLASSES, imbalanced=True,
            hyperparameters={**hp, **extra},
        )  # fmt: skip
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "semseg", "train"]
        jobs.append(
            (base, subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        )
    logs = [process.communicate(timeout=1200)[0] for _, process in jobs]
    assert [process.returncode for _, process in jobs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert "class_weights=auto: median-frequency balancing of 32 training masks" in logs[1]
    rare = list(RARE_CLASSES)
    plain_rare, weighted_rare = (validation_iou(base)[rare] for base, _ in jobs)
    assert weighted_rare.mean() > plain_rare.mean() + 0.03, (plain_rare, weighted_rare)
    assert weighted_rare.max() > 0.05
