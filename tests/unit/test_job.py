from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from semseg.contract.errors import ClientError
from semseg.contract.job import BASE_DIR_ENV, JobPaths, environ_summary, load_job
from tests.settings import write_config


def test_paths_follow_sagemaker_base_dir(tmp_path: Path) -> None:
    paths = JobPaths.from_environ({BASE_DIR_ENV: str(tmp_path)})
    assert paths.failure_file == tmp_path / "output" / "failure"
    assert paths.model_dir == tmp_path / "model"
    assert paths.channel("train") == tmp_path / "input" / "data" / "train"
    assert JobPaths.from_environ({}).base_dir == Path("/opt/ml")


def test_load_job_reads_the_config_files(job_dir: Path) -> None:
    write_config(job_dir, "resourceconfig.json", {"current_host": "algo-1-x7k2q", "hosts": ["algo-1-x7k2q"]})
    job = load_job(JobPaths(job_dir))
    assert job.current_host == "algo-1-x7k2q"
    assert job.hyperparameters["num_classes"] == "3"
    assert set(job.channels) == {"train", "validation", "train_annotation", "validation_annotation"}
    assert job.checkpoint_dir is None


def test_missing_required_channel_is_named(job_dir: Path) -> None:
    shutil.rmtree(job_dir / "input" / "data" / "validation_annotation")
    with pytest.raises(ClientError, match="Required channel\\(s\\) missing: validation_annotation"):
        load_job(JobPaths(job_dir))


def test_invalid_json_names_the_file(job_dir: Path) -> None:
    write_config(job_dir, "hyperparameters.json", "{not json")
    with pytest.raises(ClientError, match=r"hyperparameters\.json is not valid JSON"):
        load_job(JobPaths(job_dir))


def test_json_that_is_not_an_object(job_dir: Path) -> None:
    write_config(job_dir, "inputdataconfig.json", "[1, 2]")
    with pytest.raises(ClientError, match="must hold a JSON object"):
        load_job(JobPaths(job_dir))


PIPE = {"TrainingInputMode": "Pipe", "RecordWrapperType": "RecordIO"}


def test_pipe_mode_splits_need_no_folders(job_dir: Path) -> None:
    data = job_dir / "input" / "data"
    for name in ("train", "train_annotation"):
        shutil.rmtree(data / name)
    write_config(job_dir, "inputdataconfig.json", {"train": PIPE, "validation": {"TrainingInputMode": "FastFile"}})
    job = load_job(JobPaths(job_dir))
    assert job.pipes == {"train"}
    assert set(job.channels) == {"validation", "validation_annotation"}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"train": {"TrainingInputMode": "Pipe"}}, "'train' uses TrainingInputMode=Pipe with RecordWrapperType=None"),
        ({"label_map": PIPE}, "'label_map' uses TrainingInputMode=Pipe; only train and validation can stream"),
        ({"train_annotation": PIPE}, "only train and validation can stream"),
        ({"train": {"TrainingInputMode": "Stream"}}, "TrainingInputMode=Stream; use File, FastFile or Pipe"),
    ],
)
def test_pipe_mode_it_cannot_read_is_refused_with_a_fix(job_dir: Path, config: dict, message: str) -> None:
    write_config(job_dir, "inputdataconfig.json", config)
    with pytest.raises(ClientError, match=re.escape(message)):
        load_job(JobPaths(job_dir))


def test_several_hosts_are_read(job_dir: Path) -> None:
    write_config(job_dir, "resourceconfig.json", {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    job = load_job(JobPaths(job_dir))
    assert job.current_host == "algo-2" and job.cluster.hosts == ("algo-1", "algo-2")


def test_missing_optional_files_have_defaults(job_dir: Path) -> None:
    for name in ("inputdataconfig.json", "resourceconfig.json"):
        (job_dir / "input" / "config" / name).unlink()
    job = load_job(JobPaths(job_dir))
    assert job.current_host == "algo-1" and job.input_data_config == {}


def test_checkpoint_config(job_dir: Path, tmp_path: Path) -> None:
    write_config(job_dir, "checkpointconfig.json", {"LocalPath": str(tmp_path / "ckpt"), "S3Path": "s3://b/p"})
    assert load_job(JobPaths(job_dir)).checkpoint_dir == tmp_path / "ckpt"


def test_reading_the_job_leaves_the_process_environment_alone(job_dir: Path) -> None:
    had = os.environ.pop(BASE_DIR_ENV, None)
    before = dict(os.environ)
    try:
        load_job(JobPaths(job_dir))
        assert dict(os.environ) == before
    finally:
        if had is not None:
            os.environ[BASE_DIR_ENV] = had


def test_environ_summary_never_contains_credentials() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "tok", "TRAINING_JOB_NAME": "job-1"}
    assert environ_summary(env) == {"TRAINING_JOB_NAME": "job-1"}
