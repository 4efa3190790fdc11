"""Import GluonCV where PyTorch 2 is installed too (the torch image, the development environment).

GluonCV 0.10.5's `__init__` raises RuntimeError ("Legacy torch==2.x detected") when it finds any torch of
2.0 or newer, although its MXNet half (all we use) never touches torch. Its probe is a plain `import torch`,
so torch is hidden from it for the length of that one import and put back afterwards. Import GluonCV
through this module (or after it), never directly first.
"""

from __future__ import annotations

import sys
from types import ModuleType


def _import_gluoncv() -> ModuleType:
    if "gluoncv" in sys.modules:
        return sys.modules["gluoncv"]
    hidden = {name: sys.modules[name] for name in list(sys.modules) if name == "torch" or name.startswith("torch.")}
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        import gluoncv
    finally:
        del sys.modules["torch"]
        sys.modules.update(hidden)
    return gluoncv


gluoncv = _import_gluoncv()

from gluoncv.model_zoo import FCN, DeepLabV3, PSPNet  # noqa: E402
from gluoncv.model_zoo.deeplabv3 import _ASPP as ASPP  # noqa: E402
from gluoncv.model_zoo.fcn import _FCNHead as FCNHead  # noqa: E402
from gluoncv.model_zoo.model_store import short_hash  # noqa: E402
from gluoncv.model_zoo.segbase import SegBaseModel  # noqa: E402

__all__ = ["ASPP", "FCN", "DeepLabV3", "FCNHead", "PSPNet", "SegBaseModel", "gluoncv", "short_hash"]
