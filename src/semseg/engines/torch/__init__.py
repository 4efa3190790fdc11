"""The PyTorch engine (`SEMSEG_ENGINE=torch`): GluonCV's networks and MXNet's update rules in PyTorch, for the
GPUs MXNet 1.9.1 has no code for (9.0+, Blackwell included: semseg.engines.torch.support). Nothing in this package
imports MXNet: GluonCV files are read and written with numpy (semseg.engines.gluon_files); the symbol file of
every job is the MXNet engine's, written by the job's top (semseg.training) where MXNet is installed.
Its record for the registry (semseg.engines) is below; importing this package loads no PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from semseg.engines.record import Engine, Predictor, PredictorSettings

if TYPE_CHECKING:
    from semseg.contract.config import Config
    from semseg.contract.job import Job
    from semseg.contract.model_folder import ModelFolder
    from semseg.contract.options import RunOptions
    from semseg.contract.signals import StopFlag
    from semseg.engines.gpus import Gpu
    from semseg.fit.assembly import Trained


def train(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> Trained:
    from semseg.engines.torch.kit import train_job

    return train_job(job, config, options, stop)


def check_model(folder: ModelFolder) -> str:
    from semseg.engines.torch.predict import check_model as check

    return check(folder)


def load_predictor(folder: ModelFolder, device: str, settings: PredictorSettings) -> Predictor:
    from semseg.engines.torch.predict import load_predictor as load

    return load(folder, device, settings)


def check_gpus(gpus: Sequence[Gpu]) -> None:
    """ClientError for a GPU this image's torch has no code for, or a driver too old for its CUDA (no torch loads)."""
    from semseg.engines.torch.support import check_host

    check_host(gpus)


ENGINE = Engine("torch", "PyTorch", train, check_model, load_predictor, check_gpus, autocast=True)
