"""The GPU image, checked as far as a machine without a GPU allows: MXNet's libraries resolve from the CUDA
wheels, MXNet imports with a stand-in driver and reports CUDA, cuDNN and NCCL, `train` without a driver
ends with a ClientError, and the GPU guard refuses a Hopper GPU, naming the torch image. The stand-ins are built
here, at test time, and mounted: the image never ships them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.container.support import docker, make_job, run_job

pytestmark = pytest.mark.container

LIBMXNET = "/opt/venv/lib/python3.11/site-packages/mxnet/libmxnet.so"
# Every driver function libmxnet.so imports, plus the ones the CUDA runtime asks for first; each answers
# CUDA_ERROR_NO_DEVICE (100), so MXNet loads, counts no GPUs and runs its CPU operators.
DRIVER_FUNCTIONS = (
    "cuInit cuDriverGetVersion cuDeviceGetCount cuGetProcAddress cuDeviceGet cuDevicePrimaryCtxRetain "
    "cuGraphKernelNodeGetParams cuGraphNodeGetType cuLaunchKernel cuModuleGetFunction cuModuleLoadData "
    "cuModuleLoadDataEx cuModuleUnload"
).split()


@pytest.fixture(scope="module")
def stand_in_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a libcuda.so.1 that has no devices, built with the host's gcc."""
    folder = tmp_path_factory.mktemp("driver")
    source = folder / "libcuda.c"
    lines = [f"int {name}(void) {{ return 100; }}" for name in DRIVER_FUNCTIONS]
    lines.append('int cuGetErrorString(int error, const char **text) { *text = "no device (stand-in)"; return 0; }')
    source.write_text("\n".join(lines) + "\n")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(folder / "libcuda.so.1"), str(source)],
        check=True,
    )
    source.unlink()
    return folder


def with_driver(folder: Path) -> list[str]:
    return ["-v", f"{folder}:/opt/stand-in:ro", "-e", "LD_LIBRARY_PATH=/opt/stand-in"]


def python(image: str, code: str, docker_args: list[str]) -> subprocess.CompletedProcess[str]:
    return docker(
        "run", "--rm", "--network", "none", *docker_args, "--entrypoint", "/opt/venv/bin/python", image, "-c", code
    )


def test_every_library_of_mxnet_resolves_but_the_driver(gpu_image: str) -> None:
    ldd = docker("run", "--rm", "--network", "none", "--entrypoint", "ldd", gpu_image, LIBMXNET).stdout
    missing = sorted({line.split()[0] for line in ldd.splitlines() if "not found" in line})
    assert missing == ["libcuda.so.1"], ldd
    for library in ("libcudart.so.11.0", "libcublas.so.11", "libcudnn.so.8", "libnccl.so.2", "libnvrtc.so.11.2"):
        assert f"{library} => /opt/venv/lib/python3.11/site-packages/nvidia/" in ldd, library


def test_the_image_ships_no_driver(gpu_image: str) -> None:
    found = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        gpu_image,
        "-c",
        "ldconfig -p | grep libcuda.so",
        check=False,
    )
    assert found.stdout.strip() == ""


def test_mxnet_reports_cuda_cudnn_and_nccl_with_a_driver(gpu_image: str, stand_in_driver: Path) -> None:
    code = (
        "import json, mxnet as mx\n"
        "features = mx.runtime.Features()\n"
        "print(json.dumps({'version': mx.__version__, 'gpus': mx.context.num_gpus(),\n"
        "  **{name: features.is_enabled(name) for name in ('CUDA', 'CUDNN', 'NCCL', 'DIST_KVSTORE')}}))\n"
    )
    out = json.loads(python(gpu_image, code, with_driver(stand_in_driver)).stdout.strip().splitlines()[-1])
    assert out == {"version": "1.9.1", "gpus": 0, "CUDA": True, "CUDNN": True, "NCCL": True, "DIST_KVSTORE": True}


def test_train_without_a_driver_is_a_client_error(gpu_image: str, tmp_path: Path) -> None:
    base = make_job(gpu_image, tmp_path / "ml")
    done = run_job(gpu_image, base)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith("ClientError: This is the GPU image") and "libcuda.so.1" in failure
    assert "--gpus all" in failure and not (base / "model" / "model_algo-1").exists()


def test_train_with_a_driver_and_no_gpus_trains_on_the_cpu(
    gpu_image: str, tmp_path: Path, stand_in_driver: Path
) -> None:
    base = make_job(gpu_image, tmp_path / "ml")
    done = run_job(gpu_image, base, docker_args=with_driver(stand_in_driver))
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Number of GPUs being used: 0" in done.stdout and "validation mIOU: " in done.stdout
    assert (base / "model" / "model_best.params").stat().st_size > 0


def test_a_hopper_gpu_is_refused_before_any_data_work(gpu_image: str, tmp_path: Path, stand_in_driver: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "0, NVIDIA H100 80GB HBM3, 9.0"\n')
    smi.chmod(0o755)
    base = make_job(gpu_image, tmp_path / "ml")
    args = [
        *with_driver(stand_in_driver),
        "-v",
        f"{tools}:/opt/tools:ro",
        "-e",
        "PATH=/opt/tools:/opt/venv/bin:/usr/bin:/bin",
    ]
    done = run_job(gpu_image, base, docker_args=args)
    assert done.returncode == 2, done.stdout[-2000:]
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith("ClientError: GPU 0 NVIDIA H100 80GB HBM3 (compute capability 9.0)")
    assert "use the torch image (semseg:torch of `make" in failure
    assert "image/annotation pairs" not in done.stdout
