from __future__ import annotations

import re
from pathlib import Path

import pytest

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.fit.memory import GIB, DeviceMemory, check_fits, gpu_memory, host_memory_bytes

V100 = 16 * GIB


def gpu(config: Config, devices: int = 8) -> DeviceMemory:
    """One of `devices` 16 GiB GPUs, the batch split over them."""
    return gpu_memory(config, V100, devices)


def config(**values: object) -> Config:
    return Config.from_hyperparameters({"num_classes": "21", "num_training_samples": "1000", **values})


@pytest.mark.parametrize(
    "values",
    [
        {},  # the defaults: crop 480, batch 4
        {"mini_batch_size": "16", "crop_size": "480", "backbone": "resnet-101", "algorithm": "deeplab"},  # GluonCV's
        {"mini_batch_size": "8", "crop_size": "768", "algorithm": "psp"},  # Cityscapes-style crops, 1 per GPU
    ],
)
def test_what_trains_on_a_16_gib_gpu_is_not_refused(values: dict[str, str]) -> None:
    check_fits(config(**values), gpu(config(**values)))


def test_a_crop_that_cannot_fit_is_refused_naming_the_values_and_what_fits() -> None:
    big = config(crop_size="8192", mini_batch_size="8")
    with pytest.raises(ClientError) as info:
        check_fits(big, gpu(big))
    message = info.value.message
    assert message.startswith("crop_size=8192 with 1 training image(s) and 1 validation image(s) at once on one device")
    assert "mini_batch_size=8" in message and "GPU 0 (16.0 GiB) cannot hold even half of that" in message
    largest = re.search(r"crop_size=(\d+) at these batches, or at crop_size=8192 (\d+) training", message)
    assert largest, message
    fits = config(crop_size=largest.group(1), mini_batch_size="8")
    check_fits(fits, gpu(fits))  # the advice passes the check
    too_big = config(crop_size=str(int(largest.group(1)) + 512), mini_batch_size="8")
    with pytest.raises(ClientError):
        check_fits(too_big, gpu(too_big))


def test_a_batch_that_cannot_fit_is_refused_and_float16_halves_the_activations() -> None:
    many = config(mini_batch_size="400", crop_size="480")
    with pytest.raises(ClientError, match="400 training image"):
        check_fits(many, gpu(many, devices=1))
    float32 = config(mini_batch_size="25", crop_size="480")
    with pytest.raises(ClientError, match="25 training image"):
        check_fits(float32, gpu(float32, devices=1))
    float16 = config(mini_batch_size="25", crop_size="480", precision_dtype="float16")
    check_fits(float16, gpu(float16, devices=1))


def test_the_host_memory_is_the_hosts_or_its_containers_limit() -> None:
    total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    assert 0 < host_memory_bytes() <= total


def test_crop_and_base_size_are_bounded_by_the_largest_image() -> None:
    with pytest.raises(ClientError) as info:
        config(crop_size="99999999999999", base_size="10000")
    assert "crop_size" in info.value.message and "base_size" in info.value.message and "8192" in info.value.message
