"""The GPU guard, with a stand-in nvidia-smi on PATH (real MXNet: the CPU build, which sees no GPUs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.options import RunOptions
from semseg.engines.gpus import Gpu, visible_gpus
from semseg.engines.mxnet.devices import select_devices
from semseg.engines.mxnet.support import check_supported
from tests.helpers import fake_nvidia_smi

CONFIG = Config(num_classes=3, num_training_samples=4)
OPTIONS = RunOptions(weights_root=Path("/nonexistent"))
H100 = "0, NVIDIA H100 80GB HBM3, 9.0"
V100 = "0, Tesla V100-SXM2-16GB, 7.0"


def test_gpus_are_read_with_their_compute_capability(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, [V100, "1, NVIDIA A10G, 8.6"])
    assert visible_gpus() == [Gpu(0, "Tesla V100-SXM2-16GB", (7, 0)), Gpu(1, "NVIDIA A10G", (8, 6))]


def test_no_nvidia_smi_means_no_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus() == []


def test_an_old_driver_without_compute_cap_lists_gpus_of_unknown_capability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, [V100], old_driver=True)
    gpus = visible_gpus()
    assert gpus == [Gpu(0, "Tesla V100-SXM2-16GB", None)]
    check_supported(gpus)  # unknown capability: not refused


def test_hopper_is_refused_naming_the_gpu_and_what_works() -> None:
    with pytest.raises(ClientError) as info:
        check_supported([Gpu(0, "NVIDIA H100 80GB HBM3", (9, 0)), Gpu(1, "NVIDIA H100 80GB HBM3", (9, 0))])
    message = str(info.value)
    assert "GPU 0 NVIDIA H100 80GB HBM3 (compute capability 9.0)" in message and "GPU 1" in message
    assert "ml.p5" in message and "A10G (ml.g5)" in message and "V100 (ml.p3)" in message
    assert "the torch image (semseg:torch of `make" in message and "--build-arg FLAVOUR=torch" in message


@pytest.mark.parametrize("capability", [(3, 7), (10, 0), (12, 0)])
def test_other_gpus_without_code_in_this_build_are_refused(capability: tuple[int, int]) -> None:
    with pytest.raises(ClientError, match="cannot run on it"):
        check_supported([Gpu(0, "some GPU", capability)])


@pytest.mark.parametrize("capability", [(5, 0), (7, 0), (7, 5), (8, 0), (8, 6), (8, 9)])
def test_gpus_with_code_in_this_build_pass(capability: tuple[int, int]) -> None:
    check_supported([Gpu(0, "some GPU", capability)])


def test_gpus_this_mxnet_cannot_use_are_a_client_error_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, [V100])
    with pytest.raises(ClientError, match="this image's MXNet cannot use them") as info:
        select_devices(CONFIG, OPTIONS)
    assert "SEMSEG_ALLOW_CPU=true" in str(info.value) and "Tesla V100-SXM2-16GB" in str(info.value)
    devices = select_devices(CONFIG, RunOptions(weights_root=Path("/nonexistent"), allow_cpu=True))
    assert not devices.gpu and [c.device_type for c in devices.contexts] == ["cpu"]


@pytest.mark.parametrize("nvidia_smi", ["missing", "failing"])
def test_mxnet_is_asked_for_its_gpus_when_nvidia_smi_lists_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, nvidia_smi: str
) -> None:
    import mxnet as mx

    monkeypatch.setenv("PATH", str(tmp_path))
    if nvidia_smi == "failing":
        (tmp_path / "nvidia-smi").write_text("#!/bin/sh\necho 'Failed to initialize NVML' >&2\nexit 9\n")
        (tmp_path / "nvidia-smi").chmod(0o755)
    assert select_devices(CONFIG, OPTIONS).contexts == [mx.cpu()]  # the CPU build: MXNet counts none either
    monkeypatch.setattr(mx.context, "num_gpus", lambda: 2)  # what the CUDA build answers on a host with two
    with caplog.at_level("WARNING"):
        devices = select_devices(CONFIG, OPTIONS)
    assert devices.gpu and devices.contexts == [mx.gpu(0), mx.gpu(1)]
    assert "nvidia-smi lists no GPU (missing, failed or timed out) but MXNet sees 2" in caplog.text


def test_the_guard_comes_first_even_with_a_usable_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, [H100])
    with pytest.raises(ClientError, match="compute capability 9.0"):
        select_devices(CONFIG, RunOptions(weights_root=Path("/nonexistent"), allow_cpu=True))


def test_cpu_contexts_for_tests_and_benchmarks_are_capped_by_the_batch() -> None:
    options = RunOptions(weights_root=Path("/nonexistent"), cpu_devices=3)
    devices = select_devices(Config(num_classes=3, num_training_samples=4, mini_batch_size=2), options)
    assert [(c.device_type, c.device_id) for c in devices.contexts] == [("cpu", 0), ("cpu", 1)] and not devices.gpu


def test_float16_without_gpus_is_a_client_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClientError, match="precision_dtype=float16 .* needs GPUs"):
        select_devices(Config(num_classes=3, num_training_samples=4, precision_dtype="float16"), OPTIONS)
