"""A client of SageMaker Python SDK v3, run by test_sdk_v3_local_mode.py in the SDK v3 environment (.venv-sdk3):
train a job folder's channels with ModelTrainer in local-container mode and print the model archive's members;
then serve that model.tar.gz through v3's low-level local client (sagemaker.core.local.local_session: create_model,
create_endpoint_config, create_endpoint, invoke_endpoint), which runs the image's `serve` on port 8080, and write
the answers to a JPEG for each Accept type into OUT.

    python sdk_v3_train.py IMAGE JOB_FOLDER CONTAINER_ROOT REQUEST_JPEG OUT
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

from sagemaker.core.local.local_session import LocalSession
from sagemaker.core.training.configs import Compute, InputData
from sagemaker.train.model_trainer import Mode, ModelTrainer

CHANNELS = ("train", "train_annotation", "validation", "validation_annotation")
ACCEPT = {"png": "image/png", "protobuf": "application/x-protobuf", "jpeg": "image/jpeg"}
NAME = "semseg-sdk-v3"


def train(image: str, job: Path, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    trainer = ModelTrainer(
        training_image=image,
        training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local_cpu", instance_count=1),
        hyperparameters=json.loads((job / "input" / "config" / "hyperparameters.json").read_text()),
        input_data_config=[InputData(channel_name=c, data_source=str(job / "input" / "data" / c)) for c in CHANNELS],
        local_container_root=str(root),
        base_job_name=NAME,
    )
    trainer.train(wait=True, logs=True)
    model = root / "compressed_artifacts" / "model.tar.gz"
    with tarfile.open(model) as archive:
        print("MODEL " + json.dumps(sorted(archive.getnames())))
    return model


def serve(image: str, model: Path, root: Path, request: bytes, out: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": str(root)}}
    client = session.sagemaker_client
    client.create_model(
        ModelName=NAME, PrimaryContainer={"Image": image, "ModelDataUrl": f"file://{model}", "Environment": {}}
    )
    variant = {"VariantName": "AllTraffic", "ModelName": NAME, "InitialInstanceCount": 1, "InstanceType": "local"}
    client.create_endpoint_config(EndpointConfigName=NAME, ProductionVariants=[variant])
    client.create_endpoint(EndpointName=NAME, EndpointConfigName=NAME)  # returns once /ping answers
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, accept in ACCEPT.items():
            answer = session.sagemaker_runtime_client.invoke_endpoint(
                Body=request, EndpointName=NAME, ContentType="image/jpeg", Accept=accept
            )
            (out / name).write_bytes(answer["Body"].read())
            print(f"ANSWER {name} {answer['ContentType']} {answer['ResponseMetadata']['HTTPStatusCode']}")
    finally:
        client.delete_endpoint(EndpointName=NAME)
        client.delete_endpoint_config(EndpointConfigName=NAME)
        client.delete_model(ModelName=NAME)


if __name__ == "__main__":
    image, job, root, request, out = (
        sys.argv[1],
        Path(sys.argv[2]),
        Path(sys.argv[3]),
        Path(sys.argv[4]),
        Path(sys.argv[5]),
    )
    serve(image, train(image, job, root), root / "serve", request.read_bytes(), out)
