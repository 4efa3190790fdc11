"""What the torch image's PyTorch runs on, without loading PyTorch: the compute capabilities its CUDA code covers
and the NVIDIA driver its CUDA needs. The README's table of images, the image's build check
(docker/check_image.py, which reads the shipped libtorch_cuda.so) and the guard before any data work all use this
one list.

torch 2.10.0 is the package index's CUDA 12.8 build: machine code for sm_70 to sm_120 (read from its fatbin).
CUDA 12.x runs on drivers >= 525 by CUDA's minor-version compatibility, and Blackwell needs >= 570 (its first
driver). torch 2.11 and newer are CUDA 13 builds (drivers >= 580): no SageMaker inference host runs one today (470,
535 and 550), and this image serves too.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from semseg.contract.errors import ClientError
from semseg.engines.gpus import Gpu, driver_version

TORCH_VERSION = "2.10.0"  # requirements/torch.txt; a unit test holds them equal
CUDA_VERSION = "12.8"
# The capabilities the image carries machine code for; a GPU of a newer minor version runs its major's code.
CAPABILITIES = ((7, 0), (7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0))
MIN_DRIVER = 525  # CUDA 12.x through minor-version compatibility
MIN_DRIVER_BLACKWELL = 570
IMAGE = "the torch image (semseg:torch of `make images`)"
WORKING_GPUS = (
    "V100 (ml.p3), T4 (ml.g4dn), A10G (ml.g5), L4 (ml.g6), L40S (ml.g6e), A100 (ml.p4d, ml.p4de), "
    "H100 and H200 (ml.p5, ml.p5e, ml.p5en), B200 and B300 (ml.p6-b200, ml.p6-b300), RTX PRO Blackwell (ml.g7, ml.g7e)"
)


Arch = tuple[int, int]


def has_code(capability: Arch, carried: Collection[Arch], ptx: Collection[Arch] = ()) -> bool:
    """Whether a GPU of `capability` runs code built for `carried` (machine code runs on GPUs of its major version
    and an equal or newer minor one) or for `ptx` (compiled by the driver for any equal or newer GPU)."""
    return any(major == capability[0] and minor <= capability[1] for major, minor in carried) or any(
        built <= capability for built in ptx
    )


def check_host(gpus: Sequence[Gpu]) -> None:
    """check_supported with the host's driver, asked only where the driver lists GPUs (no PyTorch loads)."""
    check_supported(gpus, driver_version() if gpus else None)


def check_supported(gpus: Sequence[Gpu], driver: int | None) -> None:
    """ClientError, before any data work, for a GPU this image's torch has no code for, or a host driver (its major
    version, None where nvidia-smi does not say) too old for its CUDA."""
    bad = [g for g in gpus if g.capability is not None and not has_code(g.capability, CAPABILITIES)]
    if bad:
        older = all(g.capability is not None and g.capability < CAPABILITIES[0] for g in bad)
        advice = (
            "the gpu image (semseg:gpu of `make images`: MXNet with CUDA 11.7, compute capability 5.0 to 8.9) runs it"
            if older
            else f"use an instance with one of the GPUs it runs: {WORKING_GPUS}"
        )
        raise ClientError(
            f"{'; '.join(g.describe() for g in bad)}: this image's PyTorch {TORCH_VERSION} (CUDA {CUDA_VERSION}) "
            f"has no code for it; {advice}."
        )
    if not gpus or driver is None:
        return
    blackwell = [g for g in gpus if g.capability is not None and g.capability >= (10, 0)]
    needed = MIN_DRIVER_BLACKWELL if blackwell else MIN_DRIVER
    if driver < needed:
        raise ClientError(
            f"The host's NVIDIA driver {driver} is too old for this image's PyTorch {TORCH_VERSION} (CUDA "
            f"{CUDA_VERSION}), which needs driver {MIN_DRIVER} or newer ({MIN_DRIVER_BLACKWELL} on Blackwell) for "
            f"{gpus[0].describe()}. For an endpoint set the production variant's InferenceAmiVersion to "
            "al2-ami-sagemaker-inference-gpu-3-1 (driver 550) or al2023-ami-sagemaker-inference-gpu-4-1 (driver 580); "
            "for a batch transform TransformAmiVersion al2-ami-sagemaker-batch-gpu-535; or serve with the gpu image "
            "(semseg:gpu of `make images`: MXNet, CUDA 11.7, drivers >= 450) on GPUs up to compute capability 8.9."
        )
