"""GluonCV's ImageNet backbones in the weight store ($MXNET_HOME/models, baked into the image): which file holds a
backbone's weights, and which parameters of a network are its backbone's. No framework: both engines read these
files (the MXNet engine with GluonCV, the torch engine through the same GluonCV file format).

GluonCV names a model file `<name>-<the first 8 hex digits of its SHA-1>.params`; the hashes below are those of
GluonCV 0.10.5's model store (tests/unit/test_weights.py checks them against it).
"""

from __future__ import annotations

import logging
from pathlib import Path

from semseg.contract.errors import ClientError

log = logging.getLogger(__name__)

GLUONCV_BACKBONES = {"resnet-50": "resnet50", "resnet-101": "resnet101"}  # backbone= of GluonCV's models
STORE_HASHES = {"resnet50_v1s": "25a187fa", "resnet101_v1s": "bd93a83c"}  # GluonCV's model store, short hashes
BACKBONE_PARTS = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")  # parameter name prefixes


def backbone_weights_file(backbone: str, root: Path) -> Path:
    """GluonCV's file for the ImageNet weights of `backbone` in `root`; ClientError that says how to fix a miss."""
    name = f"{GLUONCV_BACKBONES[backbone]}_v1s"
    expected = root / f"{name}-{STORE_HASHES[name]}.params"
    if expected.is_file():
        return expected
    others = sorted(root.glob(f"{name}*.params")) if root.is_dir() else []
    if others:
        log.warning("Using %s for %s (expected the file name %s)", others[0], name, expected.name)
        return others[0]
    raise ClientError(
        f"use_pretrained_model=True needs the ImageNet weights of the {backbone} backbone, but {expected} "
        f"is missing (looked in {root}, which is $MXNET_HOME/models). This image never downloads at train "
        "time: either set use_pretrained_model=False to train the backbone from scratch, or build the image "
        "with the weights baked in (see docs/training.md, 'Pretrained weights')."
    )
