"""What the first host leaves for people to look at, the same for every engine; never the job's failure (a file
or a picture that cannot be written is a warning, and training goes on).

/opt/ml/output/data, which SageMaker uploads as output.tar.gz with every job, rewritten at each best epoch:
    evaluation.json          the best epoch's validation (semseg.outputs.evaluation)
    confusion_matrix.png     its confusion matrix, row-normalised (semseg.outputs.pictures)
    validation-<n>.png       a validation image | its truth | the best epoch's prediction, as colour overlays
and after every epoch learning_curves.png. TensorBoard's event files: semseg.outputs.board.

The pictures show the first validation images as the validation loader gives them (centre crops, or whole images
when validation_mini_batch_size is 1; this host's share), kept as they pass by in the first validation, so Pipe
mode has them too; the network predicts them again after each epoch (MAX_PICTURES passes, on the first device).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from semseg.measures.confusion import ConfusionMatrix
from semseg.measures.results import EpochResult
from semseg.outputs.board import Board
from semseg.outputs.evaluation import write_evaluation
from semseg.outputs.pictures import MAX_PICTURES, confusion_png, curves_png, save_png, triptych

log = logging.getLogger(__name__)

CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "learning_curves.png"
VALIDATION_PNG = "validation-{n}.png"

Predict = Callable[[list[np.ndarray]], list[np.ndarray]]  # HxWx3 uint8 images -> HxW class ids (TrainLoop.classes)


def host_array(values: Any) -> np.ndarray:
    """An engine's host array (MXNet NDArray, torch tensor) as numpy."""
    return np.asarray(values.asnumpy() if hasattr(values, "asnumpy") else values)


class Samples:
    """Validation batches, passed on unchanged; the first `count` images and masks of the first pass are kept."""

    def __init__(self, batches: Iterable[Any], count: int = MAX_PICTURES) -> None:
        self.batches = batches
        self.count = count
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.passes = 0

    def __iter__(self) -> Iterator[Any]:
        self.passes += 1
        for batch in self.batches:
            if self.passes == 1 and len(self.images) < self.count:
                images, masks = batch[0], batch[1]
                take = self.count - len(self.images)
                self.images += list(host_array(images[:take]))
                self.masks += list(host_array(masks[:take]))
            yield batch


class Outputs:
    def __init__(self, data_dir: Path, board: Board | None, samples: Samples, predict: Predict) -> None:
        self.data_dir = data_dir
        self.board = board
        self.samples = samples
        self.predict = predict
        self.history: list[EpochResult] = []
        self.best_epoch = -1

    def progress(self, epoch: int, iterations: int, loss: float, learning_rate: float) -> None:
        if self.board is not None:
            self.board.progress(epoch, iterations, loss, learning_rate)

    def epoch_end(self, result: EpochResult, is_best: bool) -> None:
        self.history.append(result)
        if is_best:
            self.best_epoch = result.epoch
        pictures = self._pictures() if self.board is not None or is_best else []
        if self.board is not None:
            self.board.epoch_end(result, pictures)
        matrix = result.confusion
        if is_best and matrix is not None:
            write_evaluation(self.data_dir, result.epoch, matrix)
            self._draw(CONFUSION_PNG, lambda path: confusion_png(matrix, result.epoch, path))
            for n, picture in enumerate(pictures):
                self._draw(VALIDATION_PNG.format(n=n), partial(save_png, picture))
        self._draw(CURVES_PNG, lambda path: curves_png(self.history, self.best_epoch, path))

    def record(self) -> dict[str, Any]:
        """Plain data for the checkpoint: the epochs so far and the best epoch's counts."""
        best = next((r for r in self.history if r.epoch == self.best_epoch and r.confusion is not None), None)
        return {
            "history": [dataclasses.asdict(dataclasses.replace(r, confusion=None)) for r in self.history],
            "best": None if best is None or best.confusion is None else {
                "epoch": best.epoch, "confusion": best.confusion.matrix.tolist(),
            },
        }  # fmt: skip

    def resume(self, record: dict[str, Any], num_classes: int) -> None:
        """A resumed job's curves go on from the checkpoint's epochs, and its evaluation.json and
        confusion_matrix.png are the best epoch's at once (its validation pictures come at the next improvement)."""
        try:
            best = record.get("best")
            matrix = None
            if best is not None:
                matrix = ConfusionMatrix(num_classes)
                matrix.add_counts(np.asarray(best["confusion"]).reshape(-1))
                self.best_epoch = int(best["epoch"])
            for item in record.get("history", []):
                result = EpochResult(**{k: v for k, v in item.items() if k != "confusion"})
                self.history.append(
                    dataclasses.replace(result, confusion=matrix) if result.epoch == self.best_epoch else result
                )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("The checkpoint's record of earlier epochs is unreadable (%s): curves start here", exc)
            self.history, self.best_epoch = [], -1
            return
        if matrix is not None:
            write_evaluation(self.data_dir, self.best_epoch, matrix)
            self._draw(CONFUSION_PNG, lambda path: confusion_png(matrix, self.best_epoch, path))
        if self.history:
            self._draw(CURVES_PNG, lambda path: curves_png(self.history, self.best_epoch, path))

    def close(self) -> None:
        if self.board is not None:
            self.board.close()

    def _pictures(self) -> list[np.ndarray]:
        if not self.samples.images:
            return []
        try:
            predicted = self.predict(self.samples.images)
            return [triptych(i, m, p) for i, m, p in zip(self.samples.images, self.samples.masks, predicted)]
        except Exception as exc:  # noqa: BLE001  # pictures are for people
            log.warning("Could not draw the validation pictures (%s); training goes on", exc)
            return []

    def _draw(self, name: str, draw: Callable[[Path], None]) -> None:
        try:
            draw(self.data_dir / name)
        except Exception as exc:  # noqa: BLE001
            log.warning("Could not write %s in %s (%s); training goes on", name, self.data_dir, exc)
