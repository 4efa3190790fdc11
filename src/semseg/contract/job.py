"""The SageMaker training job as data: where things are, and what the platform's config files say.

`JobPaths` is pure path arithmetic on the base folder (`$SAGEMAKER_BASE_DIR` or /opt/ml), so the CLI
can always find the failure file, even when nothing else can be read. `load_job` reads the config
JSONs and checks the channels; every problem there is a ClientError naming the file or channel.
Nothing happens at import time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semseg.contract.cluster import Cluster
from semseg.contract.errors import ClientError

log = logging.getLogger(__name__)

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"
REQUIRED_CHANNELS = ("train", "validation", "train_annotation", "validation_annotation")
OPTIONAL_CHANNELS = ("label_map", "model")
PIPE_CHANNELS = ("train", "validation")  # a Pipe-mode split streams image and mask: no `_annotation` channel
FILE_MODES = ("File", "FastFile")  # FastFile shows the same folders, read on demand
DEFAULT_HOST = "algo-1"


@dataclass(frozen=True)
class JobPaths:
    """The folders and files of a job under one base folder."""

    base_dir: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> JobPaths:
        return cls(Path(environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))

    @property
    def config_dir(self) -> Path:
        return self.base_dir / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def output_data_dir(self) -> Path:
        """Uploaded by SageMaker as output.tar.gz with every job: evaluation.json and pictures (semseg.outputs)."""
        return self.output_dir / "data"

    @property
    def tensorboard_dir(self) -> Path:
        """Uploaded by SageMaker when the job sets a TensorBoard output config (semseg.outputs.board)."""
        return self.output_dir / "tensorboard"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def default_checkpoint_dir(self) -> Path:
        return self.base_dir / "checkpoints"

    def channel(self, name: str) -> Path:
        return self.data_dir / name


@dataclass(frozen=True)
class Job:
    """Everything the platform told this job, read once at start."""

    paths: JobPaths
    hyperparameters: dict[str, Any]
    input_data_config: dict[str, dict[str, Any]]
    cluster: Cluster = field(default_factory=lambda: Cluster((DEFAULT_HOST,), DEFAULT_HOST))
    checkpoint_dir: Path | None = None
    channels: dict[str, Path] = field(default_factory=dict)
    pipes: frozenset[str] = frozenset()  # the splits in Pipe mode: FIFOs data_dir/<split>_<n>

    @property
    def current_host(self) -> str:
        return self.cluster.current_host

    def channel(self, name: str) -> Path | None:
        """The folder of an optional channel, or None when the job has no such channel."""
        return self.channels.get(name)

    def required_channel(self, name: str) -> Path:
        path = self.channels.get(name)
        if path is None:  # load_job checks the required channels, so this is our fault
            raise KeyError(name)
        return path


def read_json_file(path: Path, what: str) -> Any:
    """Parse one of the platform's JSON files; a missing or broken file is a ClientError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClientError(f"{what} {path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ClientError(f"{what} {path} is not valid JSON: {exc}. Write it as a JSON object.") from None
    except OSError as exc:
        raise ClientError(f"{what} {path} cannot be read: {exc.strerror}. Make it readable.") from None


def load_job(paths: JobPaths) -> Job:
    """Read hyperparameters.json, inputdataconfig.json, resourceconfig.json and checkpointconfig.json."""
    hp_file = paths.config_dir / "hyperparameters.json"
    if hp_file.exists():
        hyperparameters = _object(read_json_file(hp_file, "hyperparameters file"), hp_file)
    else:
        log.warning("%s is missing: running with no hyperparameters", hp_file)
        hyperparameters = {}

    idc_file = paths.config_dir / "inputdataconfig.json"
    if idc_file.exists():
        input_data_config = _object(read_json_file(idc_file, "input data config"), idc_file)
    else:
        log.warning("%s is missing: using the channel folders under %s", idc_file, paths.data_dir)
        input_data_config = {}

    cluster = _read_resource_config(paths.config_dir / "resourceconfig.json")
    checkpoint_dir = _read_checkpoint_config(paths)
    pipes = _pipe_channels(input_data_config)
    channels = _find_channels(paths, input_data_config, pipes)
    return Job(
        paths=paths,
        hyperparameters=hyperparameters,
        input_data_config=input_data_config,
        cluster=cluster,
        checkpoint_dir=checkpoint_dir,
        channels=channels,
        pipes=pipes,
    )


def _object(value: Any, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ClientError(f"{path} must hold a JSON object, not {type(value).__name__}")
    return value


def _read_resource_config(path: Path) -> Cluster:
    """The job's hosts and the current one."""
    if not path.exists():
        log.warning("%s is missing: assuming a single host named %s", path, DEFAULT_HOST)
        return Cluster((DEFAULT_HOST,), DEFAULT_HOST)
    config = _object(read_json_file(path, "resource config"), path)
    current = config.get("current_host")
    if not isinstance(current, str) or not current:
        raise ClientError(f"{path} has no current_host string")
    hosts = config.get("hosts") or [current]
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts) or current not in hosts:
        raise ClientError(f"{path}: hosts must be a list of host names that includes current_host {current!r}")
    if len(set(hosts)) != len(hosts):
        raise ClientError(f"{path} lists a host twice: {', '.join(hosts)}")
    interface, instance_type = config.get("network_interface_name"), config.get("current_instance_type")
    return Cluster(
        tuple(sorted(hosts)),  # sorted, as SageMaker's training toolkit does: the first is the leader on every host
        current,
        interface if isinstance(interface, str) and interface else None,
        instance_type if isinstance(instance_type, str) and instance_type else None,
    )


def _read_checkpoint_config(paths: JobPaths) -> Path | None:
    path = paths.config_dir / "checkpointconfig.json"
    if path.exists():
        config = _object(read_json_file(path, "checkpoint config"), path)
        local = config.get("LocalPath") or str(paths.default_checkpoint_dir)
        return Path(local)
    if paths.default_checkpoint_dir.is_dir():
        return paths.default_checkpoint_dir
    return None


def _pipe_channels(input_data_config: Mapping[str, Any]) -> frozenset[str]:
    """The channels in Pipe mode; ClientError for a mode or record wrapper this image cannot read."""
    pipes = set()
    for name, channel_config in input_data_config.items():
        config = channel_config if isinstance(channel_config, dict) else {}
        mode = config.get("TrainingInputMode", "File")
        if mode in FILE_MODES:
            continue
        if mode != "Pipe":
            raise ClientError(f"Channel {name!r} has TrainingInputMode={mode}; use File, FastFile or Pipe.")
        if name not in PIPE_CHANNELS:
            raise ClientError(
                f"Channel {name!r} uses TrainingInputMode=Pipe; only {' and '.join(PIPE_CHANNELS)} can stream "
                "(an augmented manifest). Set this channel's input mode to File."
            )
        wrapper = config.get("RecordWrapperType", "None")
        if wrapper != "RecordIO":
            raise ClientError(
                f"Channel {name!r} uses TrainingInputMode=Pipe with RecordWrapperType={wrapper}; stream an "
                "augmented manifest (S3DataType AugmentedManifestFile) with RecordWrapperType RecordIO, or "
                "use File mode."
            )
        log.info("Channel %s: Pipe mode, RecordIO (content type %s)", name, config.get("ContentType", "not set"))
        pipes.add(name)
    return frozenset(pipes)


def _find_channels(paths: JobPaths, input_data_config: Mapping[str, Any], pipes: frozenset[str]) -> dict[str, Path]:
    """The channel folders of the File-mode channels; ClientError when a required one is missing."""
    names = set(input_data_config) | {p.name for p in _subdirs(paths.data_dir)}
    streamed = {f"{split}_annotation" for split in pipes}
    for name in sorted(streamed & set(input_data_config)):
        log.warning("Ignoring channel %s: its split streams image and mask together in Pipe mode", name)
    unknown = sorted(names - set(REQUIRED_CHANNELS) - set(OPTIONAL_CHANNELS))
    if unknown:
        log.warning("Ignoring unknown channel(s): %s", ", ".join(unknown))
    required = [name for name in REQUIRED_CHANNELS if name not in pipes and name not in streamed]
    missing = [name for name in required if not paths.channel(name).is_dir()]
    if missing:
        raise ClientError(
            f"Required channel(s) missing: {', '.join(missing)}. This algorithm needs the four channels "
            f"{', '.join(REQUIRED_CHANNELS)} (looked for folders under {paths.data_dir}); in Pipe mode, "
            "train and validation each stream images and masks instead of a folder pair."
        )
    return {name: paths.channel(name) for name in required + list(OPTIONAL_CHANNELS) if paths.channel(name).is_dir()}


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return []


def environ_summary(environ: Mapping[str, str]) -> dict[str, str]:
    """The platform variables worth logging. An allow-list: credentials are never among them."""
    keep = ("TRAINING_JOB_NAME", "TRAINING_JOB_ARN", BASE_DIR_ENV, "MXNET_HOME")
    return {k: environ[k] for k in keep if k in environ}
