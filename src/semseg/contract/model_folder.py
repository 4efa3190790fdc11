"""A trained model on disk (a job's /opt/ml/model, ours or the managed algorithm's, or SageMaker's unpacked
model.tar.gz): `hyperparams.json` plus `model_best.params`, else `model_algo-1`. No MXNet here, so the server's
parent process can check a model folder before it starts its workers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.files import HYPERPARAMS, WEIGHT_FILES
from semseg.contract.job import read_json_file


@dataclass(frozen=True)
class ModelFolder:
    """A trained model on disk: its configuration and the weights to load."""

    path: Path
    config: Config
    weights: Path


def read_model_folder(folder: Path, what: str) -> ModelFolder:
    """hyperparams.json and the preferred weights of a model folder; ClientError naming the missing file.

    `what` names the folder for messages, e.g. "channel 'model'".
    """
    hp_file = folder / HYPERPARAMS
    content = read_json_file(hp_file, f"The configuration of the model in {what},")
    if not isinstance(content, dict):
        raise ClientError(f"{hp_file} in {what} must be a JSON object")
    try:
        config = Config.from_hyperparameters({str(k): str(v) for k, v in content.items()})
    except ClientError as exc:
        raise ClientError(f"{hp_file} in {what} is not a valid configuration: {exc}") from None
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return ModelFolder(folder, config, folder / name)
    raise ClientError(f"{what} has neither {' nor '.join(WEIGHT_FILES)} next to {hp_file}")
