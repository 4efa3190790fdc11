"""The torch image, checked as far as a machine without a GPU allows: PyTorch's CUDA libraries resolve from
NVIDIA's wheels and carry code for every compute capability the README lists (read from the shipped fatbin), the
image defaults to the PyTorch engine, its guard refuses a host driver too old for its CUDA before any data work, a
job in it trains on the CPU with the managed metric lines and GluonCV artifacts (written by the CPU MXNet it
carries for that), and its `serve` predicts with PyTorch as the CPU image's MXNet does."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.container.support import docker, gluoncv_output_shape, make_job, run_job

pytestmark = pytest.mark.container

LIBTORCH_CUDA = "/opt/venv/lib/python3.11/site-packages/torch/lib/libtorch_cuda.so"


def python(image: str, code: str) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python", image, "-c", code)


def test_every_library_of_torch_resolves_from_the_cuda_wheels(torch_image: str) -> None:
    ldd = docker("run", "--rm", "--network", "none", "--entrypoint", "ldd", torch_image, LIBTORCH_CUDA).stdout
    assert "not found" not in ldd, ldd
    for library in ("libcudart.so.12", "libcublas.so.12", "libcudnn.so.9", "libnccl.so.2"):
        assert f"{library} => /opt/venv/lib/python3.11/site-packages/torch/lib/../../nvidia/" in ldd, library


def test_torch_carries_code_for_every_listed_gpu_and_the_engine_is_torch(torch_image: str) -> None:
    code = (
        "import json, os, torch, mxnet\n"
        "from pathlib import Path\n"
        "from semseg.engines.torch.fatbin import read_gpu_code\n"
        "from semseg.engines.torch.support import CAPABILITIES, TORCH_VERSION, has_code\n"
        f"found = read_gpu_code(Path('{LIBTORCH_CUDA}'))\n"
        "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'mxnet': mxnet.__version__,\n"
        "  'listed': TORCH_VERSION, 'sass': sorted(found.sass), 'engine': os.environ.get('SEMSEG_ENGINE'),\n"
        "  'lacking': [c for c in CAPABILITIES if not has_code(c, found.sass, found.ptx)]}))\n"
    )
    out = json.loads(python(torch_image, code).stdout.strip().splitlines()[-1])
    assert out["torch"] == "2.10.0+cu128" and out["listed"] == "2.10.0" and out["cuda"] == "12.8"
    assert out["mxnet"] == "1.9.1" and out["engine"] == "torch"
    assert out["lacking"] == [] and [7, 5] in out["sass"] and [10, 0] in out["sass"] and [12, 0] in out["sass"]
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", torch_image).stdout)
    assert labels["com.semseg.flavour"] == "torch" and labels["com.semseg.engine"] == "torch"


def test_a_driver_too_old_for_blackwell_is_refused_before_any_data_work(torch_image: str, tmp_path: Path) -> None:
    """A stand-in nvidia-smi lists a B200 with driver 550 (Blackwell needs 570): a ClientError that names the
    driver and what to do, before the data is read."""
    tools = tmp_path / "tools"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text(
        '#!/bin/sh\ncase "$1" in\n  *driver_version*) echo "550.127.05" ;;\n  *) echo "0, NVIDIA B200, 10.0" ;;\nesac\n'
    )
    smi.chmod(0o755)
    base = make_job(torch_image, tmp_path / "ml")
    args = ["-v", f"{tools}:/opt/tools:ro", "-e", "PATH=/opt/tools:/opt/venv/bin:/usr/bin:/bin"]
    done = run_job(torch_image, base, docker_args=args)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith("ClientError: The host's NVIDIA driver 550 is too old for this image's PyTorch 2.10.0")
    assert "570" in failure and "GPU 0 NVIDIA B200 (compute capability 10.0)" in failure
    assert "image/annotation pairs" not in done.stdout


def test_a_job_trains_on_the_torch_engine_and_writes_gluoncv_artifacts(torch_image: str, tmp_path: Path) -> None:
    base = make_job(torch_image, tmp_path / "ml", {"epochs": "2"})
    done = run_job(torch_image, base)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count(", validation mIOU: ") == 2 and "#throughput_metric" in done.stdout
    model = base / "model"
    assert {"model_algo-1", "model_best.params", "hyperparams.json", "model-symbol.json"} <= {
        p.name for p in model.iterdir()
    }
    # the artifacts load in plain GluonCV, inside the image (the test client has no MXNet)
    assert gluoncv_output_shape(torch_image, model, "model_best.params") == "(1, 3, 32, 32)"


def test_the_torch_image_serves_with_torch_as_the_cpu_image_serves(
    image: str, torch_image: str, tmp_path: Path
) -> None:
    """The same model.tar.gz contents, `serve` over real HTTP in both images: the torch image's PyTorch answers
    the class PNG of the CPU image's MXNet on at least 99% of the pixels."""
    import io

    import numpy as np
    from PIL import Image

    from tests.container.support import free_port, request, wait_for_ping

    base = make_job(image, tmp_path / "ml", {"epochs": "1"})
    trained = run_job(image, base)
    assert trained.returncode == 0, trained.stdout[-3000:]
    picture = io.BytesIO()
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (41, 53, 3), dtype=np.uint8)).save(picture, "PNG")
    answers, logs = {}, {}
    for engine, tag in (("mxnet", image), ("torch", torch_image)):
        port = free_port()
        name = f"semseg-serve-{engine}-{port}"
        docker(
            "run", "-d", "--name", name, "--network", "host", "-e", f"SAGEMAKER_BIND_TO_PORT={port}",
            "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=1", "-e", "SEMSEG_SERVE_MODEL=engine",  # not the job's export
            "-v", f"{base / 'model'}:/opt/ml/model:ro", tag, "serve",
        )  # fmt: skip
        try:
            wait_for_ping(port, name)
            status, headers, body = request(port, "/invocations", picture.getvalue(), **{"Content-Type": "image/png"})
            assert status == 200 and headers["Content-Type"] == "image/png", body[:300]
            answers[engine] = np.asarray(Image.open(io.BytesIO(body)))
            logs[engine] = docker("logs", name).stdout + docker("logs", name).stderr
        finally:
            docker("rm", "-f", name, check=False)
    assert answers["torch"].shape == (41, 53)
    assert (answers["torch"] == answers["mxnet"]).mean() >= 0.99
    assert "SEMSEG_ENGINE=torch: serving with PyTorch on the CPU" in logs["torch"], logs["torch"][-3000:]
    assert "model_best.params on the MXNet engine" in logs["mxnet"]


def test_buildspecs_smoke_test_passes_on_the_torch_image(torch_image: str) -> None:
    """docker/smoke_test.sh as buildspec.yml runs it before pushing the torch image, here without a GPU."""
    import os

    from tests.container.support import ROOT, free_port

    env = {**os.environ, "SMOKE_ENGINE": "PyTorch", "SMOKE_DOCKER_ARGS": "", "SMOKE_PORT": str(free_port())}
    done = subprocess.run(
        ["bash", str(ROOT / "docker" / "smoke_test.sh"), torch_image],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"smoke test passed: {torch_image}" in done.stdout


def test_a_dinov2_job_trains_in_the_torch_image_and_the_mxnet_image_names_it(
    image: str, torch_image: str, tmp_path: Path
) -> None:
    """backbone=dinov2-small with the linear head (frozen by default, so use_pretrained_model=True needs weights;
    these images are built without them: from scratch) trains in the torch image and exports model.onnx; the MXNet
    image refuses the same job with a ClientError that names the torch image."""
    hp = {"epochs": "1", "backbone": "dinov2-small", "algorithm": "linear", "use_pretrained_model": "False"}
    base = make_job(torch_image, tmp_path / "torch", hp)
    done = run_job(torch_image, base)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = {p.name for p in (base / "model").iterdir()}
    assert {"model_algo-1", "model_best.params", "hyperparams.json", "model.onnx"} <= files
    assert "model-symbol.json" not in files
    refused = make_job(image, tmp_path / "mxnet", hp)
    assert run_job(image, refused).returncode == 2
    failure = (refused / "output" / "failure").read_text()
    assert failure.startswith("ClientError: backbone=dinov2-small (DINOv2) trains on the PyTorch engine only")
