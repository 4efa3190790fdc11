"""The torch image's GPU guard and the list it holds (semseg.engines.torch.support), and the fatbin reader that the
image's build check uses to prove the list, on the installed torch's real libtorch_cuda.so."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.options import RunOptions
from semseg.engines.gpus import Gpu, driver_version
from semseg.engines.torch.fatbin import read_gpu_code
from semseg.engines.torch.support import CAPABILITIES, TORCH_VERSION, check_supported, has_code
from tests.helpers import fake_nvidia_smi

ROOT = Path(__file__).resolve().parents[2]


def test_the_listed_version_is_the_pinned_and_the_installed_one() -> None:
    import torch

    pinned = re.search(r"^torch==(\S+)", (ROOT / "requirements" / "torch.txt").read_text(), re.MULTILINE)
    assert pinned is not None and pinned.group(1) == TORCH_VERSION
    assert torch.__version__.split("+")[0] == TORCH_VERSION


def test_the_installed_libtorch_cuda_carries_code_for_every_listed_capability() -> None:
    """What the image's build check does, on the same torch wheel (the development environment installs it)."""
    import torch

    code = read_gpu_code(Path(torch.__file__).parent / "lib" / "libtorch_cuda.so")
    assert [c for c in CAPABILITIES if not has_code(c, code.sass, code.ptx)] == []
    assert {(7, 5), (9, 0), (10, 0), (12, 0)} <= code.sass
    assert not has_code((6, 1), code.sass, code.ptx)  # Pascal: none (and no PTX a driver could compile for it)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc to build a fat binary")
def test_the_reader_tells_machine_code_from_ptx(tmp_path: Path) -> None:
    source = tmp_path / "k.cu"
    source.write_text("__global__ void k(float* x) { x[0] = 1; }\n")
    gencode = ["arch=compute_75,code=sm_75", "arch=compute_90,code=compute_90", "arch=compute_100,code=sm_100"]
    flags = [part for g in gencode for part in ("-gencode", g)]
    subprocess.run(["nvcc", "-c", str(source), "-o", str(tmp_path / "k.o"), *flags], check=True, timeout=300)
    code = read_gpu_code(tmp_path / "k.o")
    assert code.sass == {(7, 5), (10, 0)} and code.ptx == {(9, 0)}
    assert code.describe() == "sm_75 sm_100 compute_90"
    assert has_code((12, 0), code.sass, code.ptx) and not has_code((8, 6), code.sass, code.ptx)


def test_a_file_that_is_not_elf_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.so").write_bytes(b"not an ELF file at all")
    with pytest.raises(ValueError, match="not a 64-bit little-endian ELF"):
        read_gpu_code(tmp_path / "x.so")


@pytest.mark.parametrize(
    "capability", [(7, 0), (7, 5), (8, 0), (8, 6), (8, 7), (8, 9), (9, 0), (10, 0), (10, 3), (12, 0), (12, 1)]
)
def test_gpus_from_v100_to_blackwell_pass(capability: tuple[int, int]) -> None:
    check_supported([Gpu(0, "some GPU", capability)], driver=580)


def test_a_gpu_older_than_the_build_names_the_gpu_image() -> None:
    with pytest.raises(ClientError) as info:
        check_supported([Gpu(0, "Tesla P100-PCIE-16GB", (6, 0))], driver=550)
    assert str(info.value).startswith("GPU 0 Tesla P100-PCIE-16GB (compute capability 6.0): this image's PyTorch")
    assert "the gpu image (semseg:gpu of `make images`" in str(info.value)


@pytest.mark.parametrize(
    ("gpu", "driver", "refused"),
    [
        (Gpu(0, "NVIDIA A10G", (8, 6)), 470, True),  # the default of ml.g5 endpoints: CUDA 11.4
        (Gpu(0, "NVIDIA A10G", (8, 6)), 535, False),
        (Gpu(0, "NVIDIA H200", (9, 0)), 550, False),
        (Gpu(0, "NVIDIA B200", (10, 0)), 550, True),  # Blackwell needs 570
        (Gpu(0, "NVIDIA B200", (10, 0)), 570, False),
        (Gpu(0, "NVIDIA A10G", (8, 6)), None, False),  # the driver does not say: torch's own check follows
    ],
)
def test_the_driver_is_checked_against_the_image_cuda(gpu: Gpu, driver: int | None, refused: bool) -> None:
    if not refused:
        check_supported([gpu], driver)
        return
    with pytest.raises(ClientError) as info:
        check_supported([gpu], driver)
    message = str(info.value)
    assert message.startswith(f"The host's NVIDIA driver {driver} is too old for this image's PyTorch {TORCH_VERSION}")
    assert gpu.describe() in message and "InferenceAmiVersion" in message and "semseg:gpu of `make images`" in message


def test_the_driver_version_is_read_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, ["0, NVIDIA A10G, 8.6"], driver="470.256.02")
    assert driver_version() == 470
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert driver_version() is None


def test_the_torch_engine_refuses_an_old_driver_before_any_data_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """select_devices, which the job runs first: the CPU torch here has no CUDA, but the guard reads the driver."""
    from semseg.engines.torch.devices import select_devices

    fake_nvidia_smi(tmp_path, monkeypatch, ["0, NVIDIA L4, 8.9"], driver="470.256.02")
    options = RunOptions(weights_root=Path("/nonexistent"), allow_cpu=True)
    with pytest.raises(ClientError, match="driver 470 is too old"):
        select_devices(Config(num_classes=3, num_training_samples=4), options)
    fake_nvidia_smi(tmp_path, monkeypatch, ["0, NVIDIA L4, 8.9"], driver="550.127.05")
    assert select_devices(Config(num_classes=3, num_training_samples=4), options).kind == "cpu"  # allowed CPU


def test_the_instance_table_says_what_each_image_runs() -> None:
    """Every GPU row of docs/instances.md's table: `yes` exactly where the image's guard passes."""
    from semseg.engines.mxnet.support import MAX_CAPABILITY, MIN_CAPABILITY

    text = (ROOT / "docs" / "instances.md").read_text()
    rows = re.findall(r"^\| (ml\.[^|]+) \| [^|(]+\((\d+)\.(\d+)\) \| (yes|no) \| (yes|no) \|$", text, re.MULTILINE)
    assert len(rows) == 10
    for instances, major, minor, torch_image, gpu_image in rows:
        capability = (int(major), int(minor))
        assert (torch_image == "yes") == has_code(capability, CAPABILITIES), instances
        assert (gpu_image == "yes") == (MIN_CAPABILITY <= capability <= MAX_CAPABILITY), instances
    listed = ", ".join(f"{major}.{minor}" for major, minor in CAPABILITIES[:-1]) + f" and {CAPABILITIES[-1][0]}.0"
    assert f"compute capability {listed}" in " ".join(text.split())
