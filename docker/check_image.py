"""Build-time check of the image: every shared library of MXNet resolves, and the package imports.

libcuda.so.1 comes from the host's driver at run time (the NVIDIA runtime mounts it), so it is the one
library allowed to be missing at build time; without it MXNet cannot be imported, so imports are then
checked only for what does not load MXNet.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

DRIVER_LIBRARIES = ("libcuda.so.1", "libnvidia-ml.so.1")


def main() -> None:
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
        import semseg.config

        return
    import cv2
    import gluoncv
    import mxnet

    import semseg.training  # noqa: F401 - the whole training stack imports

    print(f"mxnet {mxnet.__version__}, gluoncv {gluoncv.__version__}, opencv {cv2.__version__}: ok")


if __name__ == "__main__":
    main()
