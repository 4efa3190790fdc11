"""The end of a training job, after the managed artifacts: `model.onnx` of the best weights and, where it passes its
accuracy gate, `model-int8.onnx` (semseg.export.quantize), with the gate's figures in the log and in
evaluation.json. The same for both engines: it reads model_best.params, the GluonCV file both write.

Never the job's failure: whatever goes wrong here (a full volume, a runtime that cannot load the graph) is a
warning, and the managed artifacts stay as they are. A job stopped by a signal exports the FP32 graph only (a
stop has seconds, the gate takes minutes), also when the stop comes during the INT8 work. Calibration and the
gate read File-mode channels; a Pipe-mode split has no files to read again, so its job keeps the FP32 export only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

from semseg.contract.config import Config
from semseg.contract.files import BEST_PARAMS, ONNX_FP32, ONNX_INT8, atomic_write, discard
from semseg.contract.job import Job
from semseg.contract.options import ExportSettings
from semseg.data import transforms
from semseg.data.channels import Pair
from semseg.data.dataset import read_image, read_mask
from semseg.data.labels import IGNORE, load_label_map
from semseg.data.pipeline import Listed
from semseg.engines.gluon_files import read_arrays
from semseg.export import graph, runtime
from semseg.export.quantize import Gate, Verdict, quantize
from semseg.measures.confusion import ConfusionMatrix
from semseg.outputs.evaluation import add_entry

log = logging.getLogger(__name__)
T = TypeVar("T")


def write_exports(
    job: Job,
    config: Config,
    settings: ExportSettings,
    pixel_budget: int,
    should_stop: Callable[[], bool],
    listed: Listed | None = None,
) -> None:
    """model.onnx and, where it passes the gate, model-int8.onnx in the job's model folder; warnings, never errors.
    Calibration and the gate read the File-mode pairs as the job `listed` them (None: a stopped job, FP32 only).
    A stop request before or during the INT8 work (checked between images) leaves model.onnx only."""
    model_dir = job.paths.model_dir
    if not settings.export:
        log.info("SEMSEG_EXPORT=false: no %s", ONNX_FP32)
        return
    started = time.monotonic()
    try:
        fp32 = export_onnx(config, model_dir / BEST_PARAMS, model_dir / ONNX_FP32)
    except Exception as exc:  # noqa: BLE001 - the export is a bonus: the managed artifacts are complete
        log.warning("Could not export %s (%s: %s); the job's other artifacts are complete", ONNX_FP32,
                    type(exc).__name__, exc)  # fmt: skip
        return
    log.info("Exported %s (%.0f MB) in %.1f s", fp32, fp32.stat().st_size / 1e6, time.monotonic() - started)
    if not settings.int8:
        log.info("SEMSEG_INT8=false: no %s", ONNX_INT8)
    elif should_stop() or listed is None:
        log.info("Stopped: no %s (its calibration and accuracy gate take longer than a stop allows)", ONNX_INT8)
    elif job.pipes:
        log.info("No %s: calibration and its accuracy gate read File-mode channels, and %s stream(s) in Pipe mode",
                 ONNX_INT8, " and ".join(sorted(job.pipes)))  # fmt: skip
    else:
        try:
            _int8(job, config, settings, pixel_budget, fp32, should_stop, listed)
        except _StopRequested:
            discard(model_dir / ONNX_INT8)
            log.info("Stopped: %s abandoned; %s serves", ONNX_INT8, ONNX_FP32)
        except Exception as exc:  # noqa: BLE001 - never the job's failure
            discard(model_dir / ONNX_INT8)
            log.warning("Could not make %s (%s: %s); %s serves", ONNX_INT8, type(exc).__name__, exc, ONNX_FP32)


def export_onnx(config: Config, params: Path, target: Path) -> Path:
    """The ONNX graph of the GluonCV parameter file `params`, written atomically to `target`."""
    model = graph.build(config, read_arrays(params, "The best weights"))
    atomic_write(target, lambda tmp: tmp.write_bytes(model.SerializeToString()))
    return target


class _StopRequested(Exception):
    """A stop request came while the INT8 model was being made."""


def _checked(items: Iterable[T], should_stop: Callable[[], bool]) -> Iterator[T]:
    for item in items:
        if should_stop():
            raise _StopRequested
        yield item


def _int8(
    job: Job,
    config: Config,
    settings: ExportSettings,
    pixel_budget: int,
    fp32: Path,
    should_stop: Callable[[], bool],
    listed: Listed,
) -> None:
    started = time.monotonic()
    int8 = fp32.with_name(ONNX_INT8)
    train = _spaced(listed["train"], settings.calibration_images)
    count = quantize(fp32, int8, _checked(_centre_crops(train, config.crop_size), should_stop))
    log.info("Quantized %s to %s, calibrated on %d training image(s), in %.1f s", fp32.name, int8.name, count,
             time.monotonic() - started)  # fmt: skip
    if should_stop():
        raise _StopRequested
    verdict = _gate(job, config, settings, pixel_budget, (fp32, int8), count, should_stop, listed["validation"])
    add_entry(job.paths.output_data_dir, "int8", verdict.to_json())
    if verdict.kept:
        log.info("INT8 model kept as %s: %s", int8.name, verdict.reason)
    else:
        discard(int8)
        log.warning("INT8 model not kept: %s; %s serves", verdict.reason, fp32.name)


def _gate(
    job: Job,
    config: Config,
    settings: ExportSettings,
    pixel_budget: int,
    models: tuple[Path, Path],
    calibration: int,
    should_stop: Callable[[], bool],
    validation: list[Pair],
) -> Verdict:
    """Both models on the same validation images, through the server's predictor on the runtime that serves."""
    started = time.monotonic()
    pairs = _spaced(validation, settings.validation_images)
    label_map = load_label_map(job.channel("label_map"), "validation", config.num_classes)
    transform = transforms.whole_image if config.whole_image_validation else transforms.center_crop(config.crop_size)
    on = "openvino" if runtime.available("openvino") else "onnxruntime"
    predictors = [runtime.predictor(path, on, config.num_classes, config.crop_size, pixel_budget) for path in models]
    matrices = [ConfusionMatrix(config.num_classes) for _ in predictors]
    rng = np.random.default_rng(0)
    for pair in _checked(pairs, should_stop):
        mask = label_map.apply(read_mask(pair.mask), pair.mask)
        image, mask = transform(read_image(pair.image), mask, rng)
        for model, matrix in zip(predictors, matrices, strict=True):
            matrix.add(mask, model.classes(image), IGNORE)
    gate = Gate(settings.max_miou_loss, settings.max_class_loss)
    verdict = Verdict.of(matrices[0], matrices[1], gate, len(pairs), calibration)
    log.info("INT8 accuracy gate on %s: %d validation image(s) in %.1f s", runtime.LABELS[on], len(pairs),
             time.monotonic() - started)  # fmt: skip
    return verdict


def _centre_crops(pairs: list[Pair], crop_size: int) -> Iterator[np.ndarray]:
    """The images of `pairs` as validation sees them (shorter side to crop_size, centre crop): one size."""
    crop = transforms.center_crop(crop_size)
    rng = np.random.default_rng(0)
    for pair in pairs:
        image = read_image(pair.image)
        yield crop(image, np.zeros(image.shape[:2], np.uint8), rng)[0]


def _spaced(pairs: list[Pair], count: int) -> list[Pair]:
    """At most `count` pairs, evenly spaced over the sorted list (every class's folders, not the first few)."""
    if len(pairs) <= count:
        return pairs
    return [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, count).round()]
