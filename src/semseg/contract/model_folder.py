"""A trained model on disk (a job's /opt/ml/model, ours or the managed algorithm's, or SageMaker's unpacked
model.tar.gz): `hyperparams.json` plus `model_best.params`, else `model_algo-1`. No MXNet here, so the server's
parent process can check a model folder before it starts its workers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.files import HYPERPARAMS, WEIGHT_FILES
from semseg.contract.job import read_json_file

log = logging.getLogger(__name__)

NETWORK_KEYS = ("algorithm", "backbone", "num_classes", "crop_size")  # what shapes the network


@dataclass(frozen=True)
class ModelFolder:
    """A trained model on disk: its configuration and the weights to load."""

    path: Path
    config: Config
    weights: Path


def network_config(content: dict[str, Any], hp_file: Path, what: str) -> Config:
    """The configuration of a trained network, read leniently: the managed algorithm's hyperparams.json is not
    published and holds more than a job's hyperparameters, so only what the network needs (NETWORK_KEYS) is read
    and checked, JSON numbers and booleans as well as strings; every other key is ignored (and logged)."""
    ignored = sorted(str(key) for key in content if key not in NETWORK_KEYS)
    if ignored:
        log.info(
            "%s in %s: reading %s; not needed here: %s", hp_file, what, ", ".join(NETWORK_KEYS), ", ".join(ignored)
        )
    network = {key: content[key] for key in NETWORK_KEYS if key in content}
    if "num_classes" not in network:
        raise ClientError(f"{hp_file} in {what} has no num_classes; a model's configuration needs it")
    try:  # batch and sample counts play no part in a trained network: any valid pair
        return Config.from_hyperparameters({**network, "num_training_samples": 1, "mini_batch_size": 1})
    except ClientError as exc:
        raise ClientError(f"{hp_file} in {what} does not describe a network this image builds: {exc.message}") from None


def read_model_folder(folder: Path, what: str) -> ModelFolder:
    """hyperparams.json and the preferred weights of a model folder; ClientError naming the missing file.

    `what` names the folder for messages, e.g. "channel 'model'".
    """
    hp_file = folder / HYPERPARAMS
    content = read_json_file(hp_file, f"The configuration of the model in {what},")
    if not isinstance(content, dict):
        raise ClientError(f"{hp_file} in {what} must be a JSON object")
    config = network_config(content, hp_file, what)
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return ModelFolder(folder, config, folder / name)
    raise ClientError(f"{what} has neither {' nor '.join(WEIGHT_FILES)} next to {hp_file}")
