"""Every hyperparameter of the contract: valid forms, bounds just inside and outside, wrong types,
client serialisations (SDK v2 str(), SDK v3 json.dumps), unknown and ignored keys, cross-field rules."""

from __future__ import annotations

import dataclasses
import json

import pytest

from semseg.contract.config import SPECS, Config, defaults
from semseg.contract.errors import ClientError

REQUIRED = {"num_classes": "3", "num_training_samples": "10"}


def make(**overrides: object) -> Config:
    return Config.from_hyperparameters({**REQUIRED, **{k: v for k, v in overrides.items()}})


def rejects(match: str, **overrides: object) -> str:
    with pytest.raises(ClientError, match=match) as info:
        make(**overrides)
    return str(info.value)


def test_defaults_match_the_contract_table() -> None:
    config = make()
    assert (config.backbone, config.algorithm, config.use_pretrained_model) == ("resnet-50", "fcn", True)
    assert (config.crop_size, config.base_size, config.epochs, config.mini_batch_size) == (480, None, 30, 4)
    assert (config.learning_rate, config.lr_scheduler, config.optimizer, config.momentum) == (0.001, "poly", "sgd", 0.9)
    assert (config.gamma1, config.gamma2, config.weight_decay) == (0.9, 0.9, 0.0001)
    assert (config.early_stopping, config.early_stopping_min_epochs) == (False, 5)
    assert (config.early_stopping_patience, config.early_stopping_tolerance) == (4, 0.0)
    assert (config.lr_scheduler_factor, config.lr_scheduler_step, config.syncbn) == (0.1, (), False)
    assert config.validation_mini_batch_size == 4


def test_every_spec_is_a_config_field_and_back() -> None:
    assert set(SPECS) == {f.name for f in dataclasses.fields(Config)}


# (parameter, value just inside, expected, value just outside)
BOUNDS = [
    ("num_classes", "2", 2, "1"),
    ("num_classes", "254", 254, "255"),
    ("num_training_samples", "1", 1, "0"),
    ("crop_size", "24", 24, "16"),
    ("base_size", "17", 17, "16"),
    ("early_stopping_min_epochs", "0", 0, "-1"),
    ("early_stopping_patience", "1", 1, "0"),
    ("early_stopping_tolerance", "0", 0.0, "-0.01"),
    ("early_stopping_tolerance", "1", 1.0, "1.01"),
    ("epochs", "1", 1, "0"),
    ("gamma1", "0", 0.0, "-0.1"),
    ("gamma1", "1", 1.0, "1.1"),
    ("gamma2", "0", 0.0, "-0.1"),
    ("gamma2", "1", 1.0, "1.5"),
    ("learning_rate", "1e-08", 1e-08, "0"),
    ("learning_rate", "1", 1.0, "1.0001"),
    ("lr_scheduler_factor", "0", 0.0, "-0.5"),
    ("lr_scheduler_factor", "1", 1.0, "2"),
    ("mini_batch_size", "1", 1, "0"),
    ("momentum", "0.0001", 0.0001, "0"),
    ("momentum", "1", 1.0, "1.01"),
    ("validation_mini_batch_size", "1", 1, "0"),
    ("weight_decay", "1e-05", 1e-05, "0"),
    ("weight_decay", "0.99", 0.99, "1"),
]


@pytest.mark.parametrize(("name", "inside", "expected", "outside"), BOUNDS)
def test_bounds(name: str, inside: str, expected: object, outside: str) -> None:
    batch = {"mini_batch_size": "1"} if name == "num_training_samples" else {}  # the rule below
    assert getattr(make(**{name: inside}, **batch), name) == expected
    message = rejects(f"{name}={outside}", **{name: outside})
    assert "out of range" in message and name in message


def test_fewer_training_samples_than_a_batch_is_reported_with_the_other_problems() -> None:
    message = rejects("num_training_samples=3 is smaller than mini_batch_size=4", num_training_samples="3", epochs="0")
    assert "an epoch would have no iterations" in message
    assert "epochs=0 is out of range" in message, "the other problem, in the same message"
    assert make(num_training_samples="4").iterations_per_epoch == 1
    assert make(num_training_samples="11", mini_batch_size="2").iterations_per_epoch == 5


def test_whole_image_validation_is_validation_mini_batch_size_1() -> None:
    assert make(validation_mini_batch_size="1").whole_image_validation
    assert not make(validation_mini_batch_size="2").whole_image_validation


def test_out_of_range_message_names_the_range() -> None:
    assert "num_classes=1 is out of range: 2 <= num_classes <= 254" in rejects("num_classes", num_classes="1")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("num_classes", "three"),
        ("num_classes", "3.5"),
        ("num_training_samples", "1e3"),
        ("epochs", ""),
        ("learning_rate", "fast"),
        ("learning_rate", "nan"),
        ("momentum", "inf"),
        ("use_pretrained_model", "yes"),
        ("early_stopping", "2"),
        ("syncbn", "on"),
        ("backbone", "resnet-152"),
        ("algorithm", "unet"),
        ("optimizer", "lamb"),
        ("lr_scheduler", "linear"),
        ("precision_dtype", "bfloat16"),
        ("lr_scheduler_step", "10,,20"),
        ("lr_scheduler_step", "ten"),
    ],
)
def test_wrong_types_are_rejected_naming_the_parameter(name: str, value: str) -> None:
    message = rejects(name, **{name: value})
    assert message.startswith("Invalid hyperparameters: ")


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [("True", True), ("true", True), ("TRUE", True), ("1", True), ("False", False), ("false", False), ("0", False)],
)
@pytest.mark.parametrize("name", ["use_pretrained_model", "early_stopping", "syncbn"])
def test_boolean_spellings(name: str, spelling: str, expected: bool) -> None:
    assert getattr(make(**{name: spelling}), name) is expected


SDK_VALUES = {
    "backbone": "resnet-101",
    "algorithm": "deeplab",
    "use_pretrained_model": False,
    "crop_size": 240,
    "base_size": 520,
    "epochs": 10,
    "learning_rate": 1e-05,
    "momentum": 0.95,
    "early_stopping": True,
    "early_stopping_tolerance": 0.001,
    "optimizer": "rmsprop",
    "lr_scheduler": "cosine",
    "syncbn": True,
}


def _check_sdk_config(config: Config) -> None:
    assert config.backbone == "resnet-101" and config.algorithm == "deeplab"
    assert config.use_pretrained_model is False and config.early_stopping is True and config.syncbn is True
    assert (config.crop_size, config.base_size, config.epochs) == (240, 520, 10)
    assert (config.learning_rate, config.momentum, config.early_stopping_tolerance) == (1e-05, 0.95, 0.001)
    assert (config.optimizer, config.lr_scheduler) == ("rmsprop", "cosine")


def test_sdk_v2_estimator_str_forms() -> None:
    raw = {k: str(v) for k, v in {**SDK_VALUES, "num_classes": 3, "num_training_samples": 10}.items()}
    assert raw["learning_rate"] == "1e-05" and raw["syncbn"] == "True"
    _check_sdk_config(Config.from_hyperparameters(raw))


def test_sdk_v3_json_dumps_forms() -> None:
    raw = {k: json.dumps(v) for k, v in {**SDK_VALUES, "num_classes": 3, "num_training_samples": 10}.items()}
    assert raw["backbone"] == '"resnet-101"' and raw["syncbn"] == "true"
    _check_sdk_config(Config.from_hyperparameters(raw))


def test_non_string_json_values_from_a_hand_written_file() -> None:
    config = Config.from_hyperparameters({"num_classes": 3, "num_training_samples": 10, "syncbn": True, "gamma1": 0.5})
    assert (config.num_classes, config.syncbn, config.gamma1) == (3, True, 0.5)


def test_unknown_key_is_rejected_with_the_managed_message_shape() -> None:
    message = rejects("mini_batch_siz", mini_batch_siz="4")
    assert "unknown hyperparameter 'mini_batch_siz'" in message
    assert "did you mean 'mini_batch_size'?" in message
    assert "allowed: " in message and "weight_decay" in message


def test_tuning_and_sagemaker_keys_are_ignored() -> None:
    config = make(
        _tuning_objective_metric="validation:mIOU",
        sagemaker_job_name='"job"',
        sagemaker_program="x.py",
    )
    assert config.num_classes == 3


def test_missing_required_keys_are_all_listed() -> None:
    with pytest.raises(ClientError) as info:
        Config.from_hyperparameters({})
    assert "num_classes is required" in str(info.value)
    assert "num_training_samples is required" in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    message = rejects("epochs", epochs="0", optimizer="lamb", colour="red")
    assert "epochs=0" in message and "optimizer" in message and "'colour'" in message


def test_step_scheduler_needs_steps() -> None:
    rejects("lr_scheduler=step needs lr_scheduler_step", lr_scheduler="step")
    message = rejects("lr_scheduler=step needs lr_scheduler_step", lr_scheduler="step", momentum="7")
    assert "momentum=7.0 is out of range" in message


def test_cross_field_checks_skip_fields_that_are_invalid_themselves() -> None:
    message = rejects("mini_batch_size", num_training_samples="3", mini_batch_size="many")
    assert "smaller than mini_batch_size" not in message, "no comparison with a default the user did not choose"
    message = rejects("epochs", lr_scheduler="step", lr_scheduler_step="10, 20", epochs="zero")
    assert "must list epochs between" not in message


@pytest.mark.parametrize("steps", ["10, 20", "10,20", "[10, 20]", json.dumps("10, 20"), json.dumps([10, 20])])
def test_step_scheduler_list_forms(steps: str) -> None:
    config = make(lr_scheduler="step", lr_scheduler_step=steps, epochs="30")
    assert config.lr_scheduler_step == (10, 20)


@pytest.mark.parametrize("steps", ["0", "30", "31, 5", "20, 10", "10, 10"])
def test_step_epochs_must_lie_within_epochs_and_increase(steps: str) -> None:
    rejects("lr_scheduler_step", lr_scheduler="step", lr_scheduler_step=steps, epochs="30")


def test_steps_without_step_scheduler_are_accepted_and_ignored() -> None:
    assert make(lr_scheduler="poly", lr_scheduler_step="5").lr_scheduler == "poly"


def test_crop_size_is_rounded_up_to_a_multiple_of_8() -> None:
    assert make(crop_size="250").crop_size == 256
    assert make(crop_size="17").crop_size == 24
    assert make(crop_size="480").crop_size == 480


def test_to_hyperparameters_round_trips() -> None:
    config = make(lr_scheduler="step", lr_scheduler_step="3,6", epochs="9", base_size="300", syncbn="true")
    again = Config.from_hyperparameters(config.to_hyperparameters())
    assert again == config
    assert config.to_hyperparameters()["lr_scheduler_step"] == "3,6"


def test_defaults_are_strings_of_the_field_defaults() -> None:
    table = defaults()
    assert table["crop_size"] == "480" and table["use_pretrained_model"] == "True"
    assert "num_classes" not in table and "base_size" not in table


def test_config_is_frozen() -> None:
    config = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3  # type: ignore[misc]


def test_deeplabv3plus_is_accepted_and_an_unknown_algorithm_names_it() -> None:
    given = {"num_classes": "3", "num_training_samples": "4", "algorithm": "deeplabv3plus"}
    config = Config.from_hyperparameters(given)
    assert config.algorithm == "deeplabv3plus" and config.to_hyperparameters()["algorithm"] == "deeplabv3plus"
    with pytest.raises(ClientError, match="deeplabv3plus"):
        Config.from_hyperparameters({"num_classes": "3", "num_training_samples": "4", "algorithm": "deeplabv3+"})


@pytest.mark.parametrize(
    "given, message",
    [
        ({"backbone": "dinov2-small", "algorithm": "deeplabv3plus"}, "algorithm=deeplabv3plus needs the stride-4"),
        ({"algorithm": "linear"}, "algorithm=linear is DINOv2's linear head and takes backbone dinov2-small or"),
        ({"backbone_lr_multiplier": "0"}, "backbone_lr_multiplier=0 freezes the backbone, which only the DINOv2"),
    ],
)
def test_a_head_or_a_freeze_the_backbone_cannot_take_is_named(given: dict[str, str], message: str) -> None:
    with pytest.raises(ClientError, match=message):
        Config.from_hyperparameters({"num_classes": "3", "num_training_samples": "8", **given})


def test_the_backbone_learning_rate_multiplier_defaults_to_frozen_for_dinov2_only() -> None:
    base = {"num_classes": "3", "num_training_samples": "8"}
    assert Config.from_hyperparameters({**base, "backbone": "dinov2-base", "algorithm": "linear"}).backbone_lr_mult == 0
    assert Config.from_hyperparameters(base).backbone_lr_mult == 1
    given = {**base, "backbone": "dinov2-small", "backbone_lr_multiplier": "0.1"}
    assert Config.from_hyperparameters(given).backbone_lr_mult == 0.1


def test_managed_2020_defaults_fill_only_what_the_job_leaves_out() -> None:
    base = {"num_classes": "3", "num_training_samples": "64"}
    plain = Config.from_hyperparameters(base)
    assert (plain.crop_size, plain.epochs, plain.mini_batch_size, plain.base_size) == (480, 30, 4, None)
    managed = Config.from_hyperparameters({**base, "defaults": "managed-2020", "epochs": "3"})
    assert (managed.crop_size, managed.epochs, managed.mini_batch_size, managed.validation_mini_batch_size) == (
        240, 3, 16, 16,
    )  # fmt: skip
    assert managed.base_size == 520 and managed.defaults == "managed-2020"
    assert Config.from_hyperparameters(managed.to_hyperparameters()) == managed
    with pytest.raises(ClientError, match="defaults"):
        Config.from_hyperparameters({**base, "defaults": "2020"})
