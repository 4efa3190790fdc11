"""Build-time check of the image: every shared library of MXNet (and of PyTorch, in the Hopper flavour)
resolves, and the package imports.

libcuda.so.1 comes from the host's driver at run time (the NVIDIA runtime mounts it), so it is the one
library allowed to be missing at build time; without it MXNet cannot be imported, so imports are then
checked only for what does not load MXNet. PyTorch opens the driver itself when asked for a GPU, so its
libraries must all resolve, and it must carry code for Hopper (sm_90).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

DRIVER_LIBRARIES = ("libcuda.so.1", "libnvidia-ml.so.1")


def check_torch() -> None:
    """The Hopper flavour: torch's CUDA libraries resolve from NVIDIA's wheels, sm_90 is built in, the engine
    is the torch one."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return
    library = Path(next(iter(spec.submodule_search_locations))) / "lib" / "libtorch_cuda.so"
    ldd = subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=True).stdout
    missing = [line.split()[0] for line in ldd.splitlines() if "not found" in line]
    if missing:
        sys.exit(f"{library} needs libraries the image lacks: {', '.join(missing)}")
    import torch

    arches = (torch._C._cuda_getArchFlags() or "").split()
    if "sm_90" not in arches:
        sys.exit(f"torch {torch.__version__} has no code for compute capability 9.0 (built for {arches})")
    if os.environ.get("SEMSEG_ENGINE") != "torch":
        sys.exit("The Hopper flavour trains with the PyTorch engine: build it with --build-arg ENGINE=torch")
    import semseg.engines.torch.job  # noqa: F401 - the torch engine imports

    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, {' '.join(arches)}): ok")


def main() -> None:
    check_torch()
    spec = importlib.util.find_spec("mxnet")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("mxnet is not installed")
    library = Path(next(iter(spec.submodule_search_locations))) / "libmxnet.so"
    ldd = subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=True).stdout
    missing = [line.split()[0] for line in ldd.splitlines() if "not found" in line]
    unexpected = [name for name in missing if name not in DRIVER_LIBRARIES]
    if unexpected:
        sys.exit(f"{library} needs libraries the image lacks: {', '.join(unexpected)}")
    if missing:
        print(f"driver libraries come from the host at run time: {', '.join(missing)}")

        return
    import cv2
    import mxnet

    from semseg.engines.mxnet.gluoncv_import import gluoncv

    print(f"mxnet {mxnet.__version__}, gluoncv {gluoncv.__version__}, opencv {cv2.__version__}: ok")


if __name__ == "__main__":
    main()
