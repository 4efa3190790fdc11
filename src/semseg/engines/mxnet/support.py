"""What this MXNet build runs on, in one place (as semseg.engines.torch.support for the PyTorch engine): the GPUs
it has machine code for, and the guard that refuses the others before any data work.

mxnet-cu117 1.9.1 carries GPU machine code for compute capability 5.0 to 8.6 and no PTX, so it runs on 5.x to
8.x GPUs (8.9, the L4 and L40S, runs the 8.6 code) and on nothing of 9.0 or newer (H100, H200)."""

from __future__ import annotations

from collections.abc import Sequence

from semseg.contract.errors import ClientError
from semseg.engines.gpus import Gpu

MIN_CAPABILITY = (5, 0)
MAX_CAPABILITY = (8, 9)  # the newest with code in this build (8.6, by compatibility within major 8)
WORKING_GPUS = "V100 (ml.p3), T4 (ml.g4dn), A10G (ml.g5), A100 (ml.p4d), L4 (ml.g6), L40S (ml.g6e)"


def check_supported(gpus: Sequence[Gpu]) -> None:
    """ClientError naming every GPU this MXNet build has no machine code for."""
    bad = [g for g in gpus if g.capability is not None and not MIN_CAPABILITY <= g.capability <= MAX_CAPABILITY]
    if not bad:
        return
    newer = any(g.capability is not None and g.capability > MAX_CAPABILITY for g in bad)
    advice = (
        "MXNet 1.9.1 (the last release; MXNet is archived) has no code for compute capability 9.0 or newer "
        "(H100 on ml.p5, H200, Blackwell on ml.p6, ml.g7 and ml.g7e): use the torch image (semseg:torch of `make "
        "images`, or docker build --build-arg FLAVOUR=torch --build-arg ENGINE=torch), whose PyTorch engine trains "
        "the same models and writes the same artifacts, or an instance with one of the working GPUs"
        if newer
        else "this GPU is older than MXNet 1.9.1 supports: use an instance with one of the working GPUs"
    )
    raise ClientError(
        f"{'; '.join(g.describe() for g in bad)}: this image's MXNet (CUDA 11.7 build) cannot run on it. "
        f"{advice}: {WORKING_GPUS}. Or train on the CPU image on a CPU instance."
    )
