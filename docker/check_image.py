"""Build-time check of the image: every shared library of MXNet (and of PyTorch, in the torch flavour)
resolves, and the package imports.

libcuda.so.1 comes from the host's driver at run time (the NVIDIA runtime mounts it), so it is the one
library allowed to be missing at build time; without it MXNet cannot be imported, so imports are then
checked only for what does not load MXNet. PyTorch opens the driver itself when asked for a GPU, so its
libraries must all resolve, and its libtorch_cuda.so must carry code for every listed compute capability.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

DRIVER_LIBRARIES = ("libcuda.so.1", "libnvidia-ml.so.1")


def check_torch() -> None:
    """The torch flavour: torch's CUDA libraries resolve from NVIDIA's wheels, libtorch_cuda.so carries code for
    every compute capability the README lists (semseg.engines.torch.support), the engine is the torch one."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return
    library = Path(next(iter(spec.submodule_search_locations))) / "lib" / "libtorch_cuda.so"
    ldd = subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=True).stdout
    missing = [line.split()[0] for line in ldd.splitlines() if "not found" in line]
    if missing:
        sys.exit(f"{library} needs libraries the image lacks: {', '.join(missing)}")
    import torch

    from semseg.engines.torch.fatbin import read_gpu_code
    from semseg.engines.torch.support import CAPABILITIES, TORCH_VERSION, has_code

    code = read_gpu_code(library)
    lacking = [f"{major}.{minor}" for major, minor in CAPABILITIES if not has_code((major, minor), code.sass, code.ptx)]
    if lacking:
        sys.exit(f"{library} has no code for compute capability {', '.join(lacking)} (it carries {code.describe()})")
    if torch.__version__.split("+")[0] != TORCH_VERSION:
        sys.exit(f"torch {torch.__version__} is installed, semseg.engines.torch.support says {TORCH_VERSION}")
    if os.environ.get("SEMSEG_ENGINE") != "torch":
        sys.exit("The torch flavour trains with the PyTorch engine: build it with --build-arg ENGINE=torch")
    import semseg.engines.torch.kit  # noqa: F401 - the torch engine imports

    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}; {library.name}: {code.describe()}): ok")


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
