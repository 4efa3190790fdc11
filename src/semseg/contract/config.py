"""The job's hyperparameters as a frozen, validated dataclass.

`Config.from_hyperparameters(raw)` takes the string map of hyperparameters.json and either returns a
complete configuration or raises one ClientError that lists every problem found, each naming the
parameter and the allowed values. Nothing here touches files, models or data.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from semseg.contract import params as p
from semseg.contract.errors import ClientError

log = logging.getLogger(__name__)

RESNETS = ("resnet-50", "resnet-101")
VITS = ("dinov2-small", "dinov2-base")  # this image's extension: DINOv2's ViT-S/14 and ViT-B/14, torch engine only
BACKBONES = RESNETS + VITS
ALGORITHMS = ("fcn", "psp", "deeplab", "deeplabv3plus", "linear")  # deeplabv3plus, linear: this image's extensions
ENGINE_BACKBONES = {"mxnet": RESNETS, "torch": BACKBONES}  # what each engine (SEMSEG_ENGINE) trains
RESNET_ONLY = ("deeplabv3plus",)  # needs stride-4 features, which a ViT does not have
VIT_ONLY = ("linear",)  # DINOv2's linear head: BatchNorm and a 1x1 convolution on the patch tokens
OPTIMIZERS = ("adam", "adagrad", "nag", "rmsprop", "sgd")
MOMENTUM_OPTIMIZERS = ("sgd", "nag")
LR_SCHEDULERS = ("step", "poly", "cosine")
PRECISIONS = ("float32", "float16")
# defaults=managed-2020: the defaults of the managed algorithm's page since November 2020, for the hyperparameters
# a job leaves out (this image's own defaults are its 2019 specification's: crop 480, 30 epochs, batches of 4).
MANAGED_2020 = {"crop_size": "240", "epochs": "10", "mini_batch_size": "16", "validation_mini_batch_size": "16",
                "base_size": "520"}  # fmt: skip
DEFAULT_SETS = ("specification", "managed-2020")

# Keys the platform adds to every job's hyperparameters; accepted and ignored.
IGNORED_KEYS = ("_tuning_objective_metric",)
IGNORED_PREFIXES = ("sagemaker_",)

# The dilated ResNet's output stride: feature maps are 1/8 of the input. Crops are rounded up to a multiple
# of it, as the managed algorithm does; images must be at least this large.
OUTPUT_STRIDE = 8
MAX_SIDE = 8192  # crop_size and base_size: the side of the largest image a job reads (64 Mpx)


@dataclass(frozen=True)
class Spec:
    """How one hyperparameter is parsed and checked, and its valid values as the README's table says them."""

    parse: Callable[[str], Any]
    check: Callable[[Any], str | None] | None = None
    required: bool = False
    text: str = ""  # the valid values, where the parser and the check do not say them

    @property
    def valid(self) -> str:
        if self.text:
            return self.text
        if isinstance(self.check, p.Range):
            return self.check.describe()
        if isinstance(self.parse, p.Choice):
            return self.parse.describe()
        if self.parse is p.parse_bool:
            return "`True`, `False`"
        raise ValueError("a hyperparameter without a description of its valid values")


SPECS: dict[str, Spec] = {
    "backbone": Spec(p.choice(BACKBONES)),
    "use_pretrained_model": Spec(p.parse_bool),
    "algorithm": Spec(p.choice(ALGORITHMS)),
    "num_classes": Spec(p.parse_int, p.in_range(2, 254), required=True),
    "num_training_samples": Spec(p.parse_int, p.in_range(0, None, lo_open=True), required=True),
    "crop_size": Spec(p.parse_int, p.in_range(16, MAX_SIDE, lo_open=True)),
    "base_size": Spec(p.parse_int, p.in_range(16, MAX_SIDE, lo_open=True)),
    "early_stopping": Spec(p.parse_bool),
    "early_stopping_min_epochs": Spec(p.parse_int, p.in_range(0, None)),
    "early_stopping_patience": Spec(p.parse_int, p.in_range(1, None)),
    "early_stopping_tolerance": Spec(p.parse_float, p.in_range(0, 1)),
    "epochs": Spec(p.parse_int, p.in_range(0, None, lo_open=True)),
    "gamma1": Spec(p.parse_float, p.in_range(0, 1)),
    "gamma2": Spec(p.parse_float, p.in_range(0, 1)),
    "learning_rate": Spec(p.parse_float, p.in_range(0, 1, lo_open=True)),
    "lr_scheduler": Spec(p.choice(LR_SCHEDULERS)),
    "lr_scheduler_factor": Spec(p.parse_float, p.in_range(0, 1)),
    "lr_scheduler_step": Spec(p.parse_int_list, text="comma-separated epochs, e.g. `10, 20`"),
    "mini_batch_size": Spec(p.parse_int, p.in_range(0, None, lo_open=True)),
    "momentum": Spec(p.parse_float, p.in_range(0, 1, lo_open=True)),
    "optimizer": Spec(p.choice(OPTIMIZERS)),
    "syncbn": Spec(p.parse_bool),
    "validation_mini_batch_size": Spec(p.parse_int, p.in_range(0, None, lo_open=True)),
    "weight_decay": Spec(p.parse_float, p.in_range(0, 1, lo_open=True, hi_open=True)),
    # Not in the managed algorithm's public table; its log shows it as an internal setting.
    "precision_dtype": Spec(p.choice(PRECISIONS)),
    # This image's extension: the loss's weight per class (README, "Imbalanced data").
    "class_weights": Spec(p.parse_class_weights, text="`auto`, or one number >= 0 per class"),
    # This image's extension: which defaults fill the hyperparameters a job leaves out.
    "defaults": Spec(p.choice(DEFAULT_SETS)),
    # This image's extension: the backbone's learning rate as a multiple of learning_rate; 0 freezes it.
    "backbone_lr_multiplier": Spec(p.parse_float, p.in_range(0, 1)),
}


@dataclass(frozen=True)
class Config:
    """The final configuration of a training job. Field names are the hyperparameter names."""

    num_classes: int
    num_training_samples: int
    backbone: str = "resnet-50"
    use_pretrained_model: bool = True
    algorithm: str = "fcn"
    crop_size: int = 480
    base_size: int | None = None
    early_stopping: bool = False
    early_stopping_min_epochs: int = 5
    early_stopping_patience: int = 4
    early_stopping_tolerance: float = 0.0
    epochs: int = 30
    gamma1: float = 0.9
    gamma2: float = 0.9
    learning_rate: float = 0.001
    lr_scheduler: str = "poly"
    lr_scheduler_factor: float = 0.1
    lr_scheduler_step: tuple[int, ...] = ()
    mini_batch_size: int = 4
    momentum: float = 0.9
    optimizer: str = "sgd"
    syncbn: bool = False
    validation_mini_batch_size: int = 4
    weight_decay: float = 0.0001
    precision_dtype: str = "float32"
    class_weights: str | tuple[float, ...] | None = None  # None: unweighted; "auto": from the training masks
    backbone_lr_multiplier: float | None = None  # None: 0 (frozen) for DINOv2, 1 for ResNets (GluonCV's)
    defaults: str = "specification"  # managed-2020: MANAGED_2020 fills what the job leaves out

    @classmethod
    def from_hyperparameters(cls, raw: Mapping[str, Any]) -> Config:
        """Validate the hyperparameters.json map; raise one ClientError listing every problem."""
        raw = _with_managed_defaults(raw)
        values, problems = _parse_all(raw)
        problems += _cross_field_problems(values, invalid={key for key in raw if key not in values})
        if problems:
            raise ClientError(
                "Invalid hyperparameters: " + "; ".join(problems) + ". "
                "Fix them in the training job's HyperParameters and start the job again."
            )
        crop = values.get("crop_size", cls.crop_size)
        rounded = -(-crop // OUTPUT_STRIDE) * OUTPUT_STRIDE
        if rounded != crop:
            log.warning("crop_size=%d is rounded up to %d, a multiple of %d", crop, rounded, OUTPUT_STRIDE)
            values["crop_size"] = rounded
        return cls(**values)

    def to_hyperparameters(self) -> dict[str, str]:
        """The configuration as hyperparameter strings; `from_hyperparameters` reads it back unchanged."""
        out: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None or value == ():
                continue
            if isinstance(value, tuple):
                out[field.name] = ",".join(str(v) for v in value)
            else:
                out[field.name] = str(value)
        return out

    @property
    def auto_class_weights(self) -> bool:
        return self.class_weights == p.AUTO

    @property
    def vit(self) -> bool:
        """A DINOv2 backbone (the torch engine's ViTs)."""
        return self.backbone in VITS

    @property
    def backbone_lr_mult(self) -> float:
        """The backbone's learning-rate multiplier: given, or the authors' frozen protocol for DINOv2 (0) and
        GluonCV's for ResNets (1; their heads train at 10x)."""
        if self.backbone_lr_multiplier is not None:
            return self.backbone_lr_multiplier
        return 0.0 if self.vit else 1.0

    @property
    def whole_image_validation(self) -> bool:
        """validation_mini_batch_size=1: score each whole, uncropped validation image."""
        return self.validation_mini_batch_size == 1

    @property
    def uses_momentum(self) -> bool:
        """`momentum` applies to sgd and nag (MXNet's optimizers with a momentum buffer); the others ignore it."""
        return self.optimizer in MOMENTUM_OPTIMIZERS

    @property
    def iterations_per_epoch(self) -> int:
        """Optimizer updates per epoch, for the learning-rate schedule: the last partial batch is dropped."""
        return self.num_training_samples // self.mini_batch_size


def defaults() -> dict[str, str]:
    """The default of every optional hyperparameter, as strings (for the log)."""
    out: dict[str, str] = {}
    for field in dataclasses.fields(Config):
        if field.default is dataclasses.MISSING or field.default is None or field.default == ():
            continue
        out[field.name] = str(field.default)
    return out


def is_ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def _parse_all(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key in sorted(raw):
        if is_ignored(key):
            continue
        spec = SPECS.get(key)
        if spec is None:
            problems.append(_unknown_key(key))
            continue
        try:
            value = spec.parse(p.normalize(raw[key]))
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            continue
        bad_range = spec.check(value) if spec.check else None
        if bad_range:
            problems.append(f"{key}={value} is out of range: {bad_range.replace('value', key)}")
            continue
        values[key] = value
    for key, spec in SPECS.items():
        if spec.required and key not in raw:
            problems.append(f"{key} is required but missing")
    return values, problems


def _with_managed_defaults(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """`raw` with MANAGED_2020's values for what it leaves out, where it asks for them (defaults=managed-2020)."""
    try:
        chosen = p.choice(DEFAULT_SETS)(p.normalize(raw.get("defaults", DEFAULT_SETS[0])))
    except ValueError:
        return raw  # reported with the other problems
    if chosen != "managed-2020":
        return raw
    filled = {key: value for key, value in MANAGED_2020.items() if key not in raw}
    if filled:
        log.info("defaults=managed-2020: %s (the managed algorithm's defaults since November 2020)",
                 ", ".join(f"{key}={value}" for key, value in filled.items()))  # fmt: skip
    return {**raw, **filled}


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key, SPECS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown hyperparameter {key!r}{hint}; allowed: {', '.join(sorted(SPECS))}"


def _cross_field_problems(values: Mapping[str, Any], invalid: set[str]) -> list[str]:
    """The problems between fields, where every field they involve is valid (`invalid`: those reported already)."""
    problems: list[str] = []
    samples = values.get("num_training_samples")
    batch = values.get("mini_batch_size", Config.mini_batch_size)
    if samples is not None and "mini_batch_size" not in invalid and samples < batch:
        problems.append(
            f"num_training_samples={samples} is smaller than mini_batch_size={batch}, so an epoch would have no "
            "iterations; set num_training_samples to the number of training images"
        )
    weights = values.get("class_weights")
    classes = values.get("num_classes")
    if isinstance(weights, tuple) and classes is not None and len(weights) != classes:
        problems.append(
            f"class_weights has {len(weights)} numbers but num_classes={classes}; give one weight per class, "
            "in class-id order, or class_weights=auto"
        )
    problems += _network_problems(values, invalid)
    scheduler = values.get("lr_scheduler", Config.lr_scheduler)
    steps: tuple[int, ...] = values.get("lr_scheduler_step", ())
    epochs = values.get("epochs", Config.epochs)
    if invalid & {"lr_scheduler", "lr_scheduler_step", "epochs"}:
        return problems
    if scheduler == "step":
        if not steps:
            problems.append(
                "lr_scheduler=step needs lr_scheduler_step, the epochs at which to multiply the "
                'learning rate by lr_scheduler_factor, e.g. lr_scheduler_step="10, 20"'
            )
        elif any(s < 1 or s >= epochs for s in steps):
            problems.append(
                f"lr_scheduler_step={','.join(map(str, steps))} must list epochs between 1 and epochs-1={epochs - 1}"
            )
        elif list(steps) != sorted(set(steps)):
            problems.append(f"lr_scheduler_step={','.join(map(str, steps))} must be strictly increasing")
    elif steps:
        log.warning("lr_scheduler_step is ignored because lr_scheduler=%s, not step", scheduler)
    return problems


def _network_problems(values: Mapping[str, Any], invalid: set[str]) -> list[str]:
    """Heads a backbone cannot take, and a frozen backbone that has BatchNorm layers."""
    if invalid & {"backbone", "algorithm"}:
        return []
    backbone = values.get("backbone", Config.backbone)
    algorithm = values.get("algorithm", Config.algorithm)
    problems = []
    if algorithm in RESNET_ONLY and backbone in VITS:
        problems.append(
            f"algorithm={algorithm} needs the stride-4 features of a ResNet, which {backbone} does not have; use it "
            f"with backbone {' or '.join(RESNETS)}, or choose algorithm linear, fcn, psp or deeplab for {backbone}"
        )
    if algorithm in VIT_ONLY and backbone in RESNETS:
        problems.append(
            f"algorithm={algorithm} is DINOv2's linear head and takes backbone {' or '.join(VITS)}, not {backbone}; "
            "for a ResNet choose fcn, psp, deeplab or deeplabv3plus"
        )
    if values.get("backbone_lr_multiplier") == 0 and backbone in RESNETS:
        problems.append(
            f"backbone_lr_multiplier=0 freezes the backbone, which only the DINOv2 backbones allow ({backbone} has "
            "BatchNorm layers that would still learn their statistics); give a value above 0, e.g. 0.1"
        )
    return problems
