"""Full and read-only volumes, on real small volumes (tmpfs, mounted by the test as root; skipped elsewhere, but a
failure under CI, which runs as root and must run them: CI=true), on
both engines and with two torch processes: what the job says (exit code, failure file), what it keeps, and that no
temporary file is left behind. The parameter files of the tests' FCN ResNet-50 are 142 MB each."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from semseg.contract.files import free_bytes

TORCH_TWO = {"SEMSEG_ENGINE": "torch", "SEMSEG_CPU_DEVICES": "2"}
ENGINES = [
    pytest.param({}, id="mxnet"),
    pytest.param({"SEMSEG_ENGINE": "torch"}, id="torch"),
    pytest.param(TORCH_TWO, id="torch-2-processes", marks=pytest.mark.serial),
]
HP = {"epochs": 3, "mini_batch_size": 2}


def cannot(why: str) -> None:
    """Skip: this machine cannot make the volume. Under CI (CI=true) fail instead: there the tests must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the storage-fault tests, but {why}")
    pytest.skip(why)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[object]:
    """volume(path, megabytes, read_only=False): a tmpfs of that size mounted at `path`, unmounted afterwards."""
    if os.geteuid() != 0:
        cannot("mounting a small volume needs root")
    mounted: list[Path] = []

    def mount(path: Path, megabytes: int, read_only: bool = False) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], capture_output=True, text=True
        )
        if done.returncode != 0:
            cannot(f"a tmpfs cannot be mounted here: {done.stderr.strip()}")
        mounted.append(path)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def leftovers(*folders: Path) -> list[str]:
    """Temporary files or folders of atomic writes (".<name>.tmp") anywhere below `folders`."""
    return [str(p) for folder in folders for p in folder.rglob(".*.tmp")]


def fill(folder: Path, leave: int) -> None:
    """Take all but `leave` bytes of the volume of `folder`."""
    size = free_bytes(folder) - leave
    if size > 0:
        with (folder / "filler").open("wb") as file:
            file.truncate(0)
            os.posix_fallocate(file.fileno(), 0, size)


@pytest.mark.parametrize("env", ENGINES)
def test_a_full_checkpoint_volume_costs_checkpoints_not_the_model(
    train_job, volume, tmp_path: Path, env, capfd: pytest.CaptureFixture[str]
) -> None:
    """400 MB hold one checkpoint of weights and momentum (284 MB) but not a second beside it: epochs 1 and 2 each
    say so in one error line, the job ends well with all its model files, epoch 0's checkpoint stays whole, and
    best.params is a link to its weights, not a second copy."""
    base = tmp_path / "job"
    volume(base / "checkpoints", 400)
    run = train_job(HP, env=env, base=_job(base))
    assert run.code == 0, run.failure or run.log[-3000:]
    lines = run.messages + capfd.readouterr().out.splitlines()  # torch's processes log to the standard output
    failed = [m[m.index("Epoch ") :] for m in lines if "checkpoint not written" in m]
    assert sorted({m.split(":")[0] for m in failed}) == ["Epoch 1", "Epoch 2"], failed
    assert f"the checkpoint volume {base / 'checkpoints'} is full (a checkpoint needs about 284 MB" in failed[0]
    assert "the previous checkpoint (epoch-0000) is kept" in failed[0] and "Training goes on" in failed[0]
    assert {"model_algo-1", "model_best.params", "model-0000.params"} <= run.model_files
    kept = sorted(p.name for p in (base / "checkpoints").iterdir())
    weights, best = ("model.params", "best.params") if "SEMSEG_ENGINE" not in env else ("model.pt", "best.pt")
    assert kept == sorted([best, "epoch-0000"]) and leftovers(base) == []
    assert os.path.samefile(base / "checkpoints" / best, base / "checkpoints" / "epoch-0000" / weights)


@pytest.mark.parametrize("env", [ENGINES[0], ENGINES[2]])
def test_a_model_folder_that_fills_up_ends_the_job_with_what_it_needs(train_job, volume, tmp_path: Path, env) -> None:
    """Something else fills the model volume once the first model_best.params is there: the next write of the model
    folder ends the job with a ClientError that names the folder, the sizes and what to change; the earlier file
    stays whole and no temporary file is left."""
    base = tmp_path / "job"
    model = volume(base / "model", 500)
    first: list[int] = []

    def filler() -> None:
        for _ in range(6000):
            best = model / "model_best.params"
            if best.exists():
                first.append(best.stat().st_size)
                fill(model, 2 * 2**20)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=filler, daemon=True)
    thread.start()
    run = train_job(HP, env=env, base=_job(base))
    thread.join()
    assert run.code == 2, run.log[-3000:]
    assert run.failure.startswith(f"ClientError: The model folder {model} is full: ")
    assert "The model files need about 426 MB and 2 MB are free" in run.failure
    assert "VolumeSizeInGB" in run.failure and "FastFile" in run.failure and "Traceback" not in run.failure
    assert (model / "model_best.params").stat().st_size == first[0] and leftovers(base) == []


@pytest.mark.parametrize("env", ENGINES[:2])
def test_a_model_volume_too_small_is_refused_before_any_data_work(train_job, volume, tmp_path: Path, env) -> None:
    base = tmp_path / "job"
    volume(base / "model", 100)
    run = train_job(HP, env=env, base=_job(base))
    assert run.code == 2
    assert run.failure.startswith(f"ClientError: The model folder {base / 'model'} has 105 MB free, and the model ")
    assert "need about 426 MB. Give the job a larger volume (VolumeSizeInGB" in run.failure
    assert not any("image/annotation pairs" in m for m in run.messages)  # no data was read


def test_a_model_and_checkpoint_volume_is_checked_for_both(train_job, volume, tmp_path: Path) -> None:
    """The checkpoint folder on the model's volume: the model files and one checkpoint must fit together."""
    base = tmp_path / "job"
    volume(base / "model", 600)
    checkpoints = base / "model" / "checkpoints"
    job = _job(base)
    (job / "input" / "config" / "checkpointconfig.json").write_text(f'{{"LocalPath": "{checkpoints}"}}')
    run = train_job(HP, base=job)
    assert run.code == 2
    assert "The model and checkpoint folders" in run.failure and "need about 710 MB" in run.failure


@pytest.mark.parametrize("env", ENGINES[:2])
def test_a_read_only_model_folder_is_a_client_error(train_job, volume, tmp_path: Path, env) -> None:
    base = tmp_path / "job"
    volume(base / "model", 10, read_only=True)
    run = train_job(HP, env=env, base=_job(base))
    assert run.code == 2
    assert run.failure.startswith(f"ClientError: The model folder {base / 'model'} cannot be written (Read-only")
    assert "mount it without :ro" in run.failure
    assert not any("image/annotation pairs" in m for m in run.messages)


@pytest.mark.parametrize("env", ENGINES[:2])
def test_a_full_output_volume_never_fails_the_job(train_job, volume, tmp_path: Path, env) -> None:
    """evaluation.json, pictures and TensorBoard's event files on a full volume: warnings, the model, no partial
    file."""
    base = tmp_path / "job"
    output = volume(base / "output", 4)
    fill(output, 20_000)
    run = train_job(HP, env=env, base=_job(base))
    assert run.code == 0, run.failure or run.log[-3000:]
    assert any("training goes on" in m for m in run.messages)
    assert {"model_algo-1", "model_best.params"} <= run.model_files and leftovers(output) == []


def test_an_export_that_does_not_fit_is_a_warning_and_the_model_stays(train_job, volume, tmp_path: Path) -> None:
    """Room for the managed artifacts (426 MB), not for model.onnx (132 MB more): the job succeeds without it."""
    base = tmp_path / "job"
    model = volume(base / "model", 480)
    run = train_job(HP, env={"SEMSEG_EXPORT": "true", "SEMSEG_INT8": "true"}, base=_job(base))
    assert run.code == 0, run.failure or run.log[-3000:]
    assert any(m.startswith("Could not export model.onnx") and "are complete" in m for m in run.messages), run.log
    assert {"model_algo-1", "model_best.params", "model-symbol.json", "model-0000.params"} <= run.model_files
    assert not {"model.onnx", "model-int8.onnx"} & run.model_files and leftovers(model) == []


def _job(base: Path) -> Path:
    """A job folder at `base` (whose volumes the test mounted already) with the tests' usual small data."""
    from semseg.example import make_job

    hp = {"mini_batch_size": 2, "validation_mini_batch_size": 2, **HP}
    return make_job(base, images=4, size=32, hyperparameters=hp)


def test_a_volume_that_cannot_be_made_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the storage-fault tests, but no tmpfs"):
        cannot("no tmpfs")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no tmpfs"):
        cannot("no tmpfs")
