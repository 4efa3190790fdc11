"""The CLI's exit policy and failure file, on a fake /opt/ml (no training: these fail before it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from semseg.cli import EXIT_ALGORITHM_ERROR, EXIT_CLIENT_ERROR, EXIT_OK, guarded, main
from semseg.contract.errors import AlgorithmError
from semseg.contract.job import JobPaths
from tests.settings import write_config


def run(base: Path, *args: str, **env: str) -> int:
    return main(list(args), {"SAGEMAKER_BASE_DIR": str(base), **env}).code


def failure(base: Path) -> str:
    return (base / "output" / "failure").read_text()


def test_bad_hyperparameter_fails_fast_with_client_error(job_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(job_dir, "hyperparameters.json", {"num_classes": "1", "num_training_samples": "8"})
    assert run(job_dir, "train") == EXIT_CLIENT_ERROR
    text = failure(job_dir)
    assert text.startswith("ClientError: Invalid hyperparameters: num_classes=1 is out of range")
    assert "Traceback" not in text
    assert not (job_dir / "model").exists(), "nothing may be built before the configuration is valid"
    assert "ClientError" in capsys.readouterr().out


def test_unknown_hyperparameter_names_the_key(job_dir: Path) -> None:
    write_config(job_dir, "hyperparameters.json", {"num_classes": "3", "num_training_samples": "8", "lr": "0.1"})
    assert run(job_dir) == EXIT_CLIENT_ERROR
    assert "unknown hyperparameter 'lr'" in failure(job_dir)[:1024]


def test_missing_channel_is_named_in_the_failure_file(job_dir: Path) -> None:
    shutil.rmtree(job_dir / "input" / "data" / "train_annotation")
    assert run(job_dir) == EXIT_CLIENT_ERROR
    assert failure(job_dir).startswith("ClientError: Required channel(s) missing: train_annotation")


def test_unreadable_config_json(job_dir: Path) -> None:
    write_config(job_dir, "resourceconfig.json", "{")
    assert run(job_dir) == EXIT_CLIENT_ERROR
    assert "resourceconfig.json is not valid JSON" in failure(job_dir)


def test_missing_hyperparameters_file_asks_for_the_required_ones(job_dir: Path) -> None:
    (job_dir / "input" / "config" / "hyperparameters.json").unlink()
    assert run(job_dir) == EXIT_CLIENT_ERROR
    assert "num_classes is required" in failure(job_dir)


@pytest.mark.parametrize("args", [["fit"], ["train", "extra"], ["serve", "extra"]])
def test_usage_errors(job_dir: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(job_dir, *args) == EXIT_CLIENT_ERROR
    assert "usage: train" in capsys.readouterr().err


def test_secrets_are_not_logged(job_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(job_dir, "hyperparameters.json", {"num_classes": "1", "num_training_samples": "8"})
    run(job_dir, AWS_SECRET_ACCESS_KEY="very-secret-value", AWS_ACCESS_KEY_ID="AKIAEXAMPLE")
    out = capsys.readouterr().out
    assert "very-secret-value" not in out and "AKIAEXAMPLE" not in out


def test_internal_fault_becomes_algorithm_error_with_traceback(tmp_path: Path) -> None:
    def broken() -> None:
        int("not a number")  # a real ValueError from inside the job

    assert guarded(JobPaths(tmp_path), broken).code == EXIT_ALGORITHM_ERROR
    text = (tmp_path / "output" / "failure").read_text()
    assert text.startswith("AlgorithmError: ValueError: invalid literal for int()")
    assert "Traceback (most recent call last)" in text


def test_algorithm_error_keeps_its_message(tmp_path: Path) -> None:
    def broken() -> None:
        raise AlgorithmError("loss became NaN")

    assert guarded(JobPaths(tmp_path), broken).code == EXIT_ALGORITHM_ERROR
    assert (tmp_path / "output" / "failure").read_text().startswith("AlgorithmError: loss became NaN\n")


def test_success_writes_no_failure_file(tmp_path: Path) -> None:
    assert guarded(JobPaths(tmp_path), lambda: None).code == EXIT_OK
    assert not (tmp_path / "output" / "failure").exists()


@pytest.mark.parametrize("command", [["-m", "semseg"], ["-m", "semseg", "train"]])
def test_module_entry_point_runs_as_a_process(job_dir: Path, command: list[str]) -> None:
    write_config(job_dir, "hyperparameters.json", {"num_classes": "3", "num_training_samples": "8", "epochs": "x"})
    proc = subprocess.run(
        [sys.executable, *command],
        env={"SAGEMAKER_BASE_DIR": str(job_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_CLIENT_ERROR, proc.stdout + proc.stderr
    assert "epochs: 'x' is not an integer" in failure(job_dir)
    assert "Final configuration" not in proc.stdout


def test_final_configuration_is_logged_once(job_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an invalid data channel stops the job after the configuration is final but before training
    write_config(job_dir, "hyperparameters.json", {"num_classes": "3", "num_training_samples": "8", "epochs": "2"})
    for image in (job_dir / "input" / "data" / "train").iterdir():
        image.write_bytes(b"not an image")
    assert run(job_dir) == EXIT_CLIENT_ERROR
    out = capsys.readouterr().out
    assert out.count("Final configuration") == 1
    final = json.loads(out.split("Final configuration: ", 1)[1].splitlines()[0])
    assert final["epochs"] == "2" and final["crop_size"] == "480"
    assert "Channel 'train' has no usable image/annotation pairs" in failure(job_dir)
