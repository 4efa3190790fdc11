"""An exported model (`model.onnx`, `model-int8.onnx`) on a CPU runtime, as a Predictor: the server's windows and
pixel budget (semseg.measures.sliding) over a scorer that hands the runtime the uint8 image.

RUNTIMES, fastest first (benchmarks/RESULTS.md, "Serving"): OpenVINO compiles the graph for the CPU it runs on
(AVX2, AVX-512 VNNI or AMX kernels; INT8 convolutions where the graph has quantize/dequantize pairs). It compiles
one graph per input size, like the MXNet server's traced graph; a worker keeps the last few (windows all have one
size, an endpoint's images usually a few). Its precision is pinned to float32: by default it would compute in
bfloat16 on CPUs that have it (AVX-512 BF16, AMX), and the FP32 export must answer what the engine answers. Its
threads are not pinned to cores: each server worker is a process of its own, and pinned (OpenVINO's default on
Linux) two single-threaded workers both ran on the first core, at a quarter of the speed (measured).
ONNX Runtime takes any size in one session: the fallback where OpenVINO is not installed or cannot compile.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from semseg.export.graph import INPUT
from semseg.measures.sliding import SlidingWindows

log = logging.getLogger(__name__)

RUNTIMES = ("openvino", "onnxruntime")
LABELS = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}
COMPILED_SIZES = 4  # OpenVINO graphs a worker keeps, one per input size

Score = Callable[[np.ndarray], np.ndarray]


def available(runtime: str) -> bool:
    """Whether the runtime is installed; found without importing it (the server's parent process, which only
    chooses, never loads OpenVINO's plugins: its workers do)."""
    return importlib.util.find_spec(runtime) is not None


def version(runtime: str) -> str:
    try:
        return importlib.metadata.version(runtime)
    except importlib.metadata.PackageNotFoundError:
        return "?"


class OpenVinoScorer:
    """OpenVINO, one compiled graph per input size (the last COMPILED_SIZES kept)."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.model = self.core.read_model(str(path))
        self.config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False,  # pinned, every worker process put its threads on the same first cores
        }
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(image[np.newaxis])
        compiled = self._compiled(batch.shape)
        return np.asarray(compiled(batch)[0][0])

    def _compiled(self, shape: tuple[int, ...]) -> Any:
        if shape in self.compiled:
            self.compiled.move_to_end(shape)
            return self.compiled[shape]
        model = self.model.clone()
        model.reshape({INPUT: list(shape)})
        self.compiled[shape] = self.core.compile_model(model, "CPU", self.config)
        if len(self.compiled) > COMPILED_SIZES:
            self.compiled.popitem(last=False)
        return self.compiled[shape]


class OnnxRuntimeScorer:
    """ONNX Runtime's CPU provider, one session for every size."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # its warnings about unused initializers of quantized graphs
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {INPUT: np.ascontiguousarray(image[np.newaxis])})[0][0])


def scorer(path: Path, runtime: str, threads: int = 0) -> Score:
    """An HxWx3 uint8 image -> [C, H, W] float32 probabilities of the exported model at `path`."""
    if runtime == "openvino":
        return OpenVinoScorer(path, threads)
    if runtime == "onnxruntime":
        return OnnxRuntimeScorer(path, threads)
    raise ValueError(f"unknown runtime {runtime!r}")


class ExportedPredictor(SlidingWindows):
    """The Predictor of an exported model (semseg.engines.record.Predictor)."""

    def __init__(self, score: Score, num_classes: int, crop_size: int, pixel_budget: int) -> None:
        super().__init__(score, crop_size, pixel_budget)
        self._num_classes = num_classes

    @property
    def num_classes(self) -> int:
        return self._num_classes


def predictor(
    path: Path, runtime: str, num_classes: int, crop_size: int, pixel_budget: int, threads: int = 0
) -> ExportedPredictor:
    """The exported model at `path` on `runtime`, ready to answer like an engine's predictor."""
    loaded = ExportedPredictor(scorer(path, runtime, threads), num_classes, crop_size, pixel_budget)
    log.info("Worker %d: %s loaded on %s", os.getpid(), path.name, LABELS[runtime])
    return loaded
