"""Pictures of a job, for people, in the one palette of every picture this image makes (semseg.data.palette,
PASCAL VOC's colours; the ignored label 255 is VOC's boundary colour, light grey): a validation image beside
its truth and its prediction as colour overlays, the confusion matrix and the learning curves. PNG files,
drawn with Pillow and matplotlib (its Agg backend: no display). Each function may raise; its caller turns that
into a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semseg.contract.files import atomic_write
from semseg.data.palette import overlay
from semseg.measures.confusion import ConfusionMatrix
from semseg.measures.results import EpochResult

MAX_PICTURES = 4  # validation images drawn per epoch (TensorBoard) and for the best epoch (output/data)
MAX_SIDE = 384  # px: the longest side of each of the three panels; larger images are shrunk
GAP = 4  # px of white between the panels
ANNOTATED_CLASSES = 20  # up to this many classes, every cell of the confusion matrix shows its percentage
MAX_TICKS = 32  # class labels on each axis of the confusion matrix at most (every k-th class beyond)


def triptych(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """HxWx3 uint8: image | truth blended in | prediction blended in, shrunk to MAX_SIDE, GAP apart."""
    height, width = image.shape[:2]
    scale = min(1.0, MAX_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale < 1:
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        truth = np.asarray(Image.fromarray(truth.astype(np.uint8)).resize(size, Image.Resampling.NEAREST))
        prediction = np.asarray(Image.fromarray(prediction.astype(np.uint8)).resize(size, Image.Resampling.NEAREST))
    gap = np.full((size[1], GAP, 3), 255, np.uint8)
    panels = [image, gap, overlay(image, truth.astype(np.uint8)), gap, overlay(image, prediction.astype(np.uint8))]
    return np.concatenate(panels, axis=1)


def save_png(picture: np.ndarray, path: Path) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(matrix: ConfusionMatrix, epoch: int, path: Path) -> None:
    """The row-normalised confusion matrix (each true class's pixels spread over the predictions), truth in rows."""
    plt = _pyplot()
    counts = matrix.matrix.astype(np.float64)
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = matrix.num_classes
    inches = float(np.clip(0.3 * n + 2.5, 5, 16))
    fig, ax = plt.subplots(figsize=(inches + 1.2, inches), dpi=100)
    try:
        shown = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's pixels")
        every = max(1, int(np.ceil(n / MAX_TICKS)))
        ticks = np.arange(0, n, every)
        ax.set_xticks(ticks, [str(t) for t in ticks], rotation=90 if n > 10 else 0)
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"Validation confusion, epoch {epoch} (mIOU {matrix.miou:.4f})")
        if n <= ANNOTATED_CLASSES:
            for (t, p), share in np.ndenumerate(rows):
                if share >= 0.005:
                    colour = "white" if share > 0.5 else "black"
                    ax.text(p, t, f"{100 * share:.0f}", ha="center", va="center", fontsize=8, color=colour)
        fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def curves_png(history: Sequence[EpochResult], best_epoch: int, path: Path) -> None:
    """Train loss, and validation mIOU and pixel accuracy, per epoch; the best epoch marked."""
    plt = _pyplot()
    epochs = [r.epoch for r in history]
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    try:
        loss_ax.plot(epochs, [r.train_loss for r in history], marker=".", color="tab:red")
        loss_ax.set_title("train loss")
        score_ax.plot(epochs, [r.miou for r in history], marker=".", label="validation mIOU")
        score_ax.plot(epochs, [r.pixel_accuracy for r in history], marker=".", label="validation pixel accuracy")
        score_ax.set_ylim(0, 1)
        score_ax.set_title("validation")
        if best_epoch in epochs:
            score_ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
        score_ax.legend(loc="lower right")
        for ax in (loss_ax, score_ax):
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
