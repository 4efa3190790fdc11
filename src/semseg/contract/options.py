"""Settings of a run that are not hyperparameters: environment variables, each with its documented default and
range, owned here and nowhere else (docs/settings.md is this table; tests/unit/test_docs.py checks them against
each other).

Read once when `train` or `serve` starts (`RunOptions`, `ServeOptions`); nothing deeper reads the environment,
and the code below takes plain values. A value of the wrong kind is a ClientError naming the variable; a number
outside its range is taken as the range's nearest end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semseg.contract.errors import ClientError
from semseg.contract.params import parse_bool

ENGINE_NAMES = ("mxnet", "torch")  # SEMSEG_ENGINE's values (the first the default): the engines of semseg.engines
MAX_DATA_WORKERS = 16  # the managed algorithm's
DEFAULT_PIXEL_BUDGET = 1_000_000  # one pass up to 1 Mpx: about 1 GB of memory for a resnet-50 network on the CPU
DEFAULT_PIPE_TIMEOUT_S = 600.0
DEFAULT_SHUFFLE_BUFFER = 256  # pairs; ~256 x the encoded size of a pair in memory
DEFAULT_PEER_TIMEOUT_S = 60.0
MAX_PAYLOAD_MB = 6  # SageMaker's limit for a real-time request, and batch transform's default MaxPayloadInMB
MAX_PAYLOAD_LIMIT_MB = 100  # batch transform's largest MaxPayloadInMB
_KINDS = {int: "an integer", float: "a number"}


@dataclass(frozen=True)
class Setting:
    """One environment variable: how it is read, its default and range, and how docs/settings.md shows them."""

    name: str
    default: Any  # the value when unset; None: decided at run time (`shown` says how)
    kind: type = int  # int, float, bool or str
    low: float | None = None  # a smaller number is taken as `low`
    high: float | None = None
    choices: tuple[str, ...] = ()  # the values a str setting may take (lower case); () any
    shown: str = ""  # the default as documented, where it is not the value itself
    valid_text: str = ""  # the valid values as documented, where the kind and range do not say it

    def read(self, environ: Mapping[str, str]) -> Any:
        """The setting's value in `environ` (its default when unset or empty); ClientError naming a bad one."""
        raw = environ.get(self.name)
        if raw is None or raw.strip() == "":
            return self.default
        try:
            value = self._parse(raw.strip())
        except ValueError:
            raise ClientError(f"Environment variable {self.name}={raw!r}: give {self._expected()}") from None
        if self.low is not None and value < self.low:
            value = self.kind(self.low)
        if self.high is not None and value > self.high:
            value = self.kind(self.high)
        return value

    def _parse(self, raw: str) -> Any:
        if self.kind is bool:
            return parse_bool(raw)
        if self.kind is str:
            if self.choices and raw.lower() not in self.choices:
                raise ValueError(raw)
            return raw.lower() if self.choices else raw
        return self.kind(raw)

    def _expected(self) -> str:
        choices = ("true", "false") if self.kind is bool else self.choices
        values = " or ".join(choices) if choices else self.valid().replace("`", "")
        return values + (", or leave it unset" if self.default is None else "")

    def valid(self) -> str:
        """The valid values, as docs/settings.md shows them."""
        if self.valid_text:
            return self.valid_text
        if self.kind is bool:
            return "`true`, `false`"
        if self.choices:
            return ", ".join(f"`{choice}`" for choice in self.choices)
        text = _KINDS[self.kind]
        if self.low is not None and self.high is not None:
            return f"{text} from {_number(self.low)} to {_number(self.high)}"
        if self.low is not None:
            return f"{text} >= {_number(self.low)}"
        return text

    def documented_default(self) -> str:
        """The default, as docs/settings.md shows it."""
        if self.shown:
            return self.shown
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, str):
            return f"`{self.default}`"
        return _number(self.default)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_TRAINING = (
    Setting("SAGEMAKER_BASE_DIR", "/opt/ml", str, valid_text="a folder"),
    Setting("MXNET_HOME", "~/.mxnet", str, valid_text="a folder"),
    Setting("SEMSEG_ENGINE", ENGINE_NAMES[0], str, choices=ENGINE_NAMES),
    Setting("SEMSEG_SEED", 0),
    Setting("SEMSEG_DATA_WORKERS", None, low=0, shown="0 on the CPU, min(16, cores) on GPUs"),
    Setting("SEMSEG_PROGRESS_EVERY", 20, low=1),
    Setting("SEMSEG_ALLOW_CPU", False, bool),
    Setting("SEMSEG_CPU_DEVICES", 0, low=0),
    Setting("SEMSEG_PIXEL_BUDGET", DEFAULT_PIXEL_BUDGET, low=1),
    Setting("SEMSEG_PIPE_TIMEOUT", DEFAULT_PIPE_TIMEOUT_S, float, low=1),
    Setting("SEMSEG_PIPE_SHUFFLE_BUFFER", DEFAULT_SHUFFLE_BUFFER, low=0),
    Setting("SEMSEG_PS_PORT", 8000),  # the scheduler's, as in SageMaker's MXNet container
    Setting("SEMSEG_MASTER_PORT", 7777),  # torch.distributed's rendezvous, as SageMaker's PyTorch containers
    Setting("SEMSEG_PEER_TIMEOUT", DEFAULT_PEER_TIMEOUT_S, float, low=2),
    Setting("SEMSEG_WATCH", True, bool),
    Setting("OMP_NUM_THREADS", None, low=1, shown="physical cores available"),  # set by semseg.threads when unset
    Setting("SEMSEG_EXPORT", True, bool),  # model.onnx at the end of training (semseg.export)
    Setting("SEMSEG_INT8", True, bool),  # and model-int8.onnx where it passes its gate
    Setting("SEMSEG_INT8_CALIBRATION_IMAGES", 100, low=1, high=1000),
    Setting("SEMSEG_INT8_VALIDATION_IMAGES", 500, low=1),
    Setting("SEMSEG_INT8_MAX_MIOU_LOSS", 0.5, float, low=0),
    Setting("SEMSEG_INT8_MAX_CLASS_LOSS", 2.0, float, low=0),
)
_SERVING = (
    Setting("SAGEMAKER_BIND_TO_PORT", 8080),
    Setting("SAGEMAKER_MODEL_SERVER_WORKERS", None, low=1, shown="GPUs, else physical cores"),
    Setting("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, low=1),
    Setting("SAGEMAKER_MAX_PAYLOAD_IN_MB", MAX_PAYLOAD_MB, low=1, high=MAX_PAYLOAD_LIMIT_MB),
    Setting("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", None, low=1, shown="the workers"),
    Setting("SEMSEG_SERVE_AUTOCAST", None, str, choices=("bfloat16", "float16")),
    Setting("SEMSEG_TTA", None, str, valid_text="test-time augmentation attributes"),
    Setting("SEMSEG_SERVE_MODEL", "auto", str, choices=("auto", "int8", "fp32", "engine")),
    Setting("SEMSEG_SERVE_RUNTIME", "openvino", str, choices=("openvino", "onnxruntime")),
)
_WEIGHTS = (  # semseg-weights (semseg.store), at image build time
    Setting("SEMSEG_WEIGHTS_URL", "", str, valid_text="a URL (https:// or s3://) of the store's files", shown="unset"),
    Setting("SEMSEG_WEIGHTS_SHA256", "", str, valid_text="`resnet-50=<hex>,resnet-101=<hex>`", shown="unset"),
    Setting("MXNET_GLUON_REPO", "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/", str,
            valid_text="a URL", shown="GluonCV's"),
    Setting("HF_ENDPOINT", "https://huggingface.co", str, valid_text="a URL"),
    Setting("SEMSEG_DINOV2_URL", "https://dl.fbaipublicfiles.com/dinov2", str, valid_text="a URL",
            shown="the DINOv2 authors'"),
)  # fmt: skip
TRAINING_SETTINGS = {s.name: s for s in _TRAINING}
WEIGHTS_SETTINGS = {s.name: s for s in _WEIGHTS}
SERVING_SETTINGS = {s.name: s for s in _SERVING}
SETTINGS = {**TRAINING_SETTINGS, **SERVING_SETTINGS, **WEIGHTS_SETTINGS}


def default(name: str) -> Any:
    """The default of the setting `name`: the options' fields below take theirs from the table, written once."""
    return SETTINGS[name].default


def setting(environ: Mapping[str, str], name: str) -> Any:
    """The value of the setting `name` in `environ`."""
    return SETTINGS[name].read(environ)


@dataclass(frozen=True)
class PipeSettings:
    """How Pipe-mode channels are read; `should_stop` ends a wait on a FIFO."""

    timeout_s: float = default("SEMSEG_PIPE_TIMEOUT")
    shuffle_buffer: int = default("SEMSEG_PIPE_SHUFFLE_BUFFER")  # training pairs shuffled in memory
    should_stop: Callable[[], bool] = field(default=lambda: False)


@dataclass(frozen=True)
class ExportSettings:
    """What the end of training exports (semseg.export.write)."""

    export: bool = default("SEMSEG_EXPORT")  # model.onnx
    int8: bool = default("SEMSEG_INT8")  # model-int8.onnx, kept where it passes the gate
    calibration_images: int = default("SEMSEG_INT8_CALIBRATION_IMAGES")  # training images, evenly spaced
    validation_images: int = default("SEMSEG_INT8_VALIDATION_IMAGES")  # the gate's, evenly spaced
    max_miou_loss: float = default("SEMSEG_INT8_MAX_MIOU_LOSS")  # points of mIOU INT8 may lose against FP32
    max_class_loss: float = default("SEMSEG_INT8_MAX_CLASS_LOSS")  # points of IoU any class may lose


@dataclass(frozen=True)
class RunOptions:
    weights_root: Path  # GluonCV's weight store: $MXNET_HOME/models, else ~/.mxnet/models
    seed: int = default("SEMSEG_SEED")
    data_workers: int | None = default("SEMSEG_DATA_WORKERS")  # None: 0 on the CPU, else min(16, CPU cores)
    progress_every: int = default("SEMSEG_PROGRESS_EVERY")  # iterations between progress lines
    cpu_devices: int = default("SEMSEG_CPU_DEVICES")  # =N: train data-parallel on N CPU contexts (tests, benchmarks)
    allow_cpu: bool = default("SEMSEG_ALLOW_CPU")  # =true: train on the CPU where GPUs are present but unusable
    engine: str = default("SEMSEG_ENGINE")  # the name of an engine of semseg.engines
    pixel_budget: int = default("SEMSEG_PIXEL_BUDGET")  # larger validation images go by windows
    pipe_timeout_s: float = default("SEMSEG_PIPE_TIMEOUT")  # wait for a Pipe-mode FIFO and its data
    pipe_shuffle_buffer: int = default("SEMSEG_PIPE_SHUFFLE_BUFFER")  # pairs shuffled in memory
    ps_port: int = default("SEMSEG_PS_PORT")  # several hosts: the scheduler's port; + 1 + rank: peer watch
    master_port: int = default("SEMSEG_MASTER_PORT")  # torch, several hosts: the rendezvous; + 1 + rank
    peer_timeout_s: float = default("SEMSEG_PEER_TIMEOUT")  # a host silent this long has failed
    export: ExportSettings = field(default_factory=ExportSettings)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RunOptions:
        def get(name: str) -> Any:
            return setting(environ, name)

        return cls(
            weights_root=Path(get("MXNET_HOME")).expanduser() / "models",
            seed=get("SEMSEG_SEED"),
            data_workers=get("SEMSEG_DATA_WORKERS"),
            progress_every=get("SEMSEG_PROGRESS_EVERY"),
            cpu_devices=get("SEMSEG_CPU_DEVICES"),
            allow_cpu=get("SEMSEG_ALLOW_CPU"),
            engine=get("SEMSEG_ENGINE"),
            pixel_budget=get("SEMSEG_PIXEL_BUDGET"),
            pipe_timeout_s=get("SEMSEG_PIPE_TIMEOUT"),
            pipe_shuffle_buffer=get("SEMSEG_PIPE_SHUFFLE_BUFFER"),
            ps_port=get("SEMSEG_PS_PORT"),
            master_port=get("SEMSEG_MASTER_PORT"),
            peer_timeout_s=get("SEMSEG_PEER_TIMEOUT"),
            export=ExportSettings(
                get("SEMSEG_EXPORT"),
                get("SEMSEG_INT8"),
                get("SEMSEG_INT8_CALIBRATION_IMAGES"),
                get("SEMSEG_INT8_VALIDATION_IMAGES"),
                get("SEMSEG_INT8_MAX_MIOU_LOSS"),
                get("SEMSEG_INT8_MAX_CLASS_LOSS"),
            ),
        )

    def pipe(self, should_stop: Callable[[], bool]) -> PipeSettings:
        """How Pipe-mode channels are read; `should_stop` ends a wait on a FIFO."""
        return PipeSettings(self.pipe_timeout_s, self.pipe_shuffle_buffer, should_stop)

    def workers_for(self, on_gpu: bool) -> int:
        """Data-loading worker processes."""
        if self.data_workers is not None:
            return self.data_workers
        if not on_gpu:
            return 0  # on the CPU the network needs every core; loading inline measured faster here
        return min(MAX_DATA_WORKERS, os.cpu_count() or 1)


@dataclass(frozen=True)
class ServeOptions:
    """The server's settings as given (None: unset, decided by the server from its devices)."""

    port: int = default("SAGEMAKER_BIND_TO_PORT")
    workers: int | None = default("SAGEMAKER_MODEL_SERVER_WORKERS")
    timeout_s: int = default("SAGEMAKER_MODEL_SERVER_TIMEOUT")  # a request running longer restarts its worker
    max_payload_mb: int = default("SAGEMAKER_MAX_PAYLOAD_IN_MB")  # (batch transform's MaxPayloadInMB)
    max_concurrent_transforms: int | None = default("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS")
    autocast: str | None = default("SEMSEG_SERVE_AUTOCAST")  # bfloat16 or float16
    tta: str | None = default("SEMSEG_TTA")  # the test-time augmentation of requests without custom attributes
    model: str = default("SEMSEG_SERVE_MODEL")  # auto, int8, fp32 (the exports) or engine (the GluonCV weights)
    runtime: str = default("SEMSEG_SERVE_RUNTIME")  # the exports' runtime

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServeOptions:
        def get(name: str) -> Any:
            return setting(environ, name)

        return cls(
            port=get("SAGEMAKER_BIND_TO_PORT"),
            workers=get("SAGEMAKER_MODEL_SERVER_WORKERS"),
            timeout_s=get("SAGEMAKER_MODEL_SERVER_TIMEOUT"),
            max_payload_mb=get("SAGEMAKER_MAX_PAYLOAD_IN_MB"),
            max_concurrent_transforms=get("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"),
            autocast=get("SEMSEG_SERVE_AUTOCAST"),
            tta=get("SEMSEG_TTA"),
            model=get("SEMSEG_SERVE_MODEL"),
            runtime=get("SEMSEG_SERVE_RUNTIME"),
        )
