"""The real images, a real Docker engine. The CPU image comes from $SEMSEG_IMAGE, the GPU image from
$SEMSEG_GPU_IMAGE and the torch image from $SEMSEG_TORCH_IMAGE (make test-container builds all three with
docker/build.sh); without them, the fixtures build them the same way."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from tests.container.support import built_image

if os.environ.get("SEMSEG_REQUIRE_SDK") and importlib.util.find_spec("sagemaker") is None:  # set by make test
    raise pytest.UsageError(
        f"The container tests need the SageMaker SDK, which {sys.executable} lacks: run them with `make "
        "test-container` (its own SDK environment), not with the project's environment"
    )


@pytest.fixture(scope="session")
def image() -> str:
    return built_image("SEMSEG_IMAGE", "cpu")


@pytest.fixture(scope="session")
def gpu_image() -> str:
    return built_image("SEMSEG_GPU_IMAGE", "gpu")


@pytest.fixture(scope="session")
def torch_image() -> str:
    return built_image("SEMSEG_TORCH_IMAGE", "torch")
