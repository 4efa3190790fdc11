"""`docker run` with a mounted /opt/ml, as SageMaker runs the image."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.container.support import ROOT, docker, make_job, run_job

pytestmark = pytest.mark.container

ARTIFACTS = {"hyperparams.json", "model_algo-1", "model_best.params", "model-symbol.json", "model-0000.params"}


@pytest.mark.parametrize("args", [("train",), ()], ids=["train", "no-argument"])
def test_docker_run_trains(image: str, tmp_path: Path, args: tuple[str, ...]) -> None:
    base = make_job(image, tmp_path / "ml", {"epochs": "2", "mini_batch_size": "2"})
    proc = run_job(image, base, args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = {p.name for p in (base / "model").iterdir()}
    assert ARTIFACTS | {"model.onnx"} <= names <= ARTIFACTS | {"model.onnx", "model-int8.onnx"}, names
    gate = json.loads((base / "output" / "data" / "evaluation.json").read_text())["int8"]
    assert gate["kept"] == ("model-int8.onnx" in names) and f"INT8 model {'kept' if gate['kept'] else 'not kept'}" in (
        proc.stdout + proc.stderr
    )
    assert len(re.findall(r"validation mIOU: (\S+)", proc.stdout)) == 2
    assert len(re.findall(r"train loss: (\S+)", proc.stdout)) == 2
    assert "#progress_metric: host=algo-1, completed 100 % of epochs" in proc.stdout
    assert not (base / "output" / "failure").exists()
    assert json.loads((base / "model" / "hyperparams.json").read_text())["epochs"] == "2"
    data = {p.name for p in (base / "output" / "data").iterdir()}
    assert {"evaluation.json", "confusion_matrix.png", "learning_curves.png", "validation-0.png"} <= data
    assert len(list((base / "output" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert "Warning" not in proc.stderr and "Matplotlib" not in proc.stdout + proc.stderr, proc.stderr[-3000:]


def test_bad_hyperparameter_writes_the_failure_file(image: str, tmp_path: Path) -> None:
    base = make_job(image, tmp_path / "ml", {"num_classes": "1"})
    proc = run_job(image, base)
    assert proc.returncode == 2
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith("ClientError: Invalid hyperparameters: num_classes=1 is out of range")
    assert not (base / "model").exists() or not any((base / "model").iterdir())


def test_an_image_without_weights_says_so_and_a_default_job_is_a_client_error(image: str, tmp_path: Path) -> None:
    """The test images are built without ImageNet weights (PREFETCH_WEIGHTS=0): their labels and a job's log say so,
    and a job with the default use_pretrained_model=True ends at once with a ClientError that says how to add them."""
    labels = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]["Labels"]
    assert labels["com.semseg.weights.prefetched"] == "0"
    hyperparameters = make_job(image, tmp_path / "ml", {})  # use_pretrained_model: the default
    config = json.loads((hyperparameters / "input/config/hyperparameters.json").read_text())
    del config["use_pretrained_model"]
    (hyperparameters / "input/config/hyperparameters.json").write_text(json.dumps(config))
    proc = run_job(image, hyperparameters)
    assert proc.returncode == 2
    assert "This image was built without ImageNet weights" in proc.stdout + proc.stderr
    failure = (hyperparameters / "output" / "failure").read_text()
    assert failure.startswith("ClientError: use_pretrained_model=True needs the ImageNet weights of the resnet-50")
    assert "built without ImageNet weights (PREFETCH_WEIGHTS=0)" in failure
    assert "semseg-weights import" in failure and "use_pretrained_model=False" in failure
    assert not (hyperparameters / "model" / "model_algo-1").exists()


def test_the_derived_image_recipe_adds_the_weights(image: str, tmp_path: Path) -> None:
    """docs/images.md's recipe for builders that reach no source: FROM the image, COPY a file, RUN semseg-weights
    import; then a default job trains from it (a GluonCV file made by the image's own GluonCV: random weights)."""
    folder = tmp_path / "derived"
    folder.mkdir()
    made = docker(
        "run", "--rm", "--entrypoint", "/opt/venv/bin/python", "-v", f"{folder}:/out", image, "-c",
        "import semseg.engines.mxnet.gluoncv_import, mxnet as mx; from gluoncv.model_zoo import resnet50_v1s; "
        "net = resnet50_v1s(); net.initialize(mx.init.Normal(0.05)); net(mx.nd.zeros((1, 3, 32, 32))); "
        "net.save_parameters('/out/resnet50_v1s.params')",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    (folder / "Dockerfile").write_text(
        f"FROM {image}\nCOPY resnet50_v1s.params /tmp/\n"
        "RUN semseg-weights import /tmp/resnet50_v1s.params --backbone resnet-50 && rm /tmp/resnet50_v1s.params\n"
    )
    tag = f"{image}-derived-weights"
    built = subprocess.run(
        ["docker", "build", "--network", "host", "-t", tag, str(folder)],
        env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    try:
        base = make_job(tag, tmp_path / "ml", {"use_pretrained_model": "True", "epochs": "1"})
        proc = run_job(tag, base)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "Loaded ImageNet backbone weights from /opt/mxnet/models/resnet50_v1s-25a187fa.params" in proc.stdout
    finally:
        docker("rmi", "-f", tag, check=False)


def test_unknown_command_is_a_usage_error(image: str, tmp_path: Path) -> None:
    proc = run_job(image, tmp_path, ("fit",))
    assert proc.returncode == 2 and "usage: train" in proc.stderr


def test_image_facts(image: str) -> None:
    info = json.loads(docker("image", "inspect", image).stdout)[0]
    config = info["Config"]
    assert config["Entrypoint"] == ["/opt/venv/bin/train"], "exec form, so SIGTERM reaches Python"
    labels = config["Labels"]
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])
    assert labels["org.opencontainers.image.version"]
    assert "MXNET_HOME=/opt/mxnet" in config["Env"]
    probe = docker("run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "test ! -e /opt/ml && echo clean")
    assert probe.stdout.strip() == "clean"


def test_docker_stop_saves_and_exits_within_the_grace_period(image: str, tmp_path: Path) -> None:
    """StopTrainingJob and spot interruptions send SIGTERM (then SIGKILL after 120 s): `docker stop` does the same."""
    base = make_job(image, tmp_path / "ml", {"epochs": "50", "mini_batch_size": "2"})
    (base / "checkpoints").mkdir()
    name = f"semseg-stop-{tmp_path.name}"
    docker("run", "-d", "--name", name, "--network", "none", "-v", f"{base}:/opt/ml", image, "train")
    try:
        deadline = time.monotonic() + 300
        while not list((base / "checkpoints").glob("epoch-*")):
            assert time.monotonic() < deadline, docker("logs", name, check=False).stdout[-2000:]
            time.sleep(1)
        started = time.monotonic()
        docker("stop", "--time", "120", name)
        assert time.monotonic() - started < 120
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        logs = docker("logs", name).stdout
    finally:
        docker("rm", "-f", name, check=False)
    assert state["ExitCode"] == 143, logs[-2000:]
    assert "Training stopped by signal 15" in logs
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= {p.name for p in (base / "model").iterdir()}
    assert not (base / "output" / "failure").exists()


def test_a_build_with_no_reachable_weight_source_fails_naming_each(image: str) -> None:
    """The Dockerfile's weights stage, as a user's build runs it (PREFETCH_WEIGHTS=1), where no source answers (this
    machine reaches neither GluonCV's store nor the Hub, and no SEMSEG_WEIGHTS_URL is given): the build fails."""
    base = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]["Labels"]
    flavour = base["com.semseg.flavour"]
    built = subprocess.run(
        ["docker", "build", "--network", "host", "--target", "weights", "--build-arg", f"FLAVOUR={flavour}",
         "--build-arg", f"BASE_IMAGE={os.environ.get('SEMSEG_BASE_IMAGE', 'semseg-base:bookworm')}",
         "--build-arg", "PREFETCH_WEIGHTS=1", str(ROOT)],
        env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    output = built.stdout + built.stderr
    assert built.returncode != 0, output[-3000:]
    assert "No source gave the ImageNet weights of resnet-50 (resnet50_v1s-25a187fa.params):" in output
    for source in ("  gluoncv (https://", "  huggingface (https://huggingface.co/timm/resnet50s.gluon_in1k", "  url: "):
        assert source in output, output[-3000:]


def test_prepare_is_a_command_of_the_image(image: str, tmp_path: Path) -> None:
    """`docker run --rm -v "$PWD:/data" IMAGE prepare ...`: plain folders into the four channels."""
    from PIL import Image

    for k in range(4):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.new("RGB", (20, 16), (k * 40, 0, 0)).save(tmp_path / "images" / f"p{k}.jpg")
        Image.new("L", (20, 16), k % 2).save(tmp_path / "masks" / f"p{k}.png")
    done = docker(
        "run", "--rm", "--network", "none", "-v", f"{tmp_path}:/data", image, "prepare", "folders", "--images",
        "/data/images", "--masks", "/data/masks", "--num-classes", "2", "--out", "/data/out", check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "num_classes=2 num_training_samples=3" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "train", "train_annotation", "validation", "validation_annotation"
    ]  # fmt: skip
