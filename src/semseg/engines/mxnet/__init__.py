"""The MXNet engine (`SEMSEG_ENGINE=mxnet`, the default): GluonCV's networks trained with Gluon, on every GPU of
the host or the CPU, and across hosts with MXNet's parameter server. Its record for the registry
(semseg.engines) is below; importing this package loads no MXNet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from semseg.contract.errors import ClientError
from semseg.engines.record import Engine, Predictor, PredictorSettings

if TYPE_CHECKING:
    from semseg.contract.config import Config
    from semseg.contract.job import Job
    from semseg.contract.model_folder import ModelFolder
    from semseg.contract.options import RunOptions
    from semseg.contract.signals import StopFlag
    from semseg.engines.gpus import Gpu
    from semseg.fit.assembly import Trained

NO_DRIVER = (
    "This is the GPU image: its MXNet needs the NVIDIA driver (libcuda.so.1), and there is none. Run it on a GPU "
    "instance (ml.p3, ml.g4dn, ml.g5, ml.p4d, ml.g6, ml.g6e) or with `docker run --gpus all` on a host with "
    "NVIDIA GPUs, or use the CPU image."
)


def train(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> Trained:
    """The whole job on this host; the GPU image's MXNet cannot even load without the driver's libcuda.so.1."""
    try:
        from semseg.engines.mxnet.kit import train_job

        return train_job(job, config, options, stop)
    except OSError as exc:
        if "libcuda.so" not in str(exc):
            raise
        raise ClientError(NO_DRIVER) from None


def write_symbol(config: Config, params: Path, model_dir: Path) -> Path:
    from semseg.engines.mxnet.symbol import write_symbol as write

    return write(config, params, model_dir)


def check_model(folder: ModelFolder) -> str:
    from semseg.engines.mxnet.predict import check_model as check

    return check(folder)


def load_predictor(folder: ModelFolder, device: str, settings: PredictorSettings) -> Predictor:
    from semseg.engines.mxnet.predict import load_predictor as load

    return load(folder, device, settings)


def check_gpus(gpus: Sequence[Gpu]) -> None:
    from semseg.engines.mxnet.support import check_supported

    check_supported(gpus)


ENGINE = Engine("mxnet", "MXNet", train, check_model, load_predictor, check_gpus, write_symbol=write_symbol)
