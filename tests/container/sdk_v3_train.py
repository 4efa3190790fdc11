"""A client of SageMaker Python SDK v3, run by test_sdk_v3_local_mode.py in the SDK v3 environment (.venv-sdk3):
train a job folder's channels with ModelTrainer in local-container mode, print the model archive's members.

    python sdk_v3_train.py IMAGE JOB_FOLDER CONTAINER_ROOT
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

from sagemaker.train.configs import Compute, InputData
from sagemaker.train.model_trainer import Mode, ModelTrainer

CHANNELS = ("train", "train_annotation", "validation", "validation_annotation")


def main(image: str, job: Path, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    trainer = ModelTrainer(
        training_image=image,
        training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local_cpu", instance_count=1),
        hyperparameters=json.loads((job / "input" / "config" / "hyperparameters.json").read_text()),
        input_data_config=[InputData(channel_name=c, data_source=str(job / "input" / "data" / c)) for c in CHANNELS],
        local_container_root=str(root),
        base_job_name="semseg-sdk-v3",
    )
    trainer.train(wait=True, logs=True)
    with tarfile.open(root / "compressed_artifacts" / "model.tar.gz") as archive:
        print("MODEL " + json.dumps(sorted(archive.getnames())))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
