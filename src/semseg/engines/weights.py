"""GluonCV's ImageNet backbones in the weight store ($MXNET_HOME/models, filled at image build time by
`semseg-weights`, semseg.store): which file holds a backbone's weights, where its copies are published, which
parameters of a network are its backbone's, and what the store's manifest says of it. No framework: both engines
read these files (GluonCV's parameter format, semseg.engines.gluon_files).

GluonCV names a model file `<name>-<the first 8 hex digits of its SHA-1>.params`; the SHA-1 sums below are those of
GluonCV 0.10.5's model store (tests/unit/test_weights.py checks them against it). timm publishes PyTorch ports of
the same weights on the Hugging Face Hub (`timm/resnet50s.gluon_in1k`, `timm/resnet101s.gluon_in1k`: GluonCV's
structural names, BatchNorm's gamma and beta called weight and bias).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from semseg.contract.errors import ClientError
from semseg.engines.architecture import VIT_MODELS, is_vit

log = logging.getLogger(__name__)

GLUONCV_BACKBONES = {"resnet-50": "resnet50", "resnet-101": "resnet101"}  # backbone= of GluonCV's models
STORE_SHA1 = {  # GluonCV's model store: the SHA-1 of each file
    "resnet50_v1s": "25a187fa281ddc98afbcd0cc0f0646885b874b80",
    "resnet101_v1s": "bd93a83c05f709a803b1221aeff0b028e6eebb03",
}
STORE_HASHES = {name: sha1[:8] for name, sha1 in STORE_SHA1.items()}  # the short hashes of its file names
HUB_REPOSITORIES = {
    "resnet-50": "timm/resnet50s.gluon_in1k",
    "resnet-101": "timm/resnet101s.gluon_in1k",
    "dinov2-small": "facebook/dinov2-small",  # the authors' DINOv2 on the Hub (transformers' names), Apache-2.0
    "dinov2-base": "facebook/dinov2-base",
}
AUTHORS_URL = "https://dl.fbaipublicfiles.com/dinov2"  # <model>/<model>_pretrain.pth: the authors' own DINOv2 files
BACKBONE_PARTS = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")  # parameter name prefixes
MANIFEST = "semseg-weights.json"  # in the store: where each file came from (semseg.store), or that none was fetched


@dataclass(frozen=True)
class Backbone:
    """A backbone of the store: its name (backbone=), its model's name (GluonCV's, or the DINOv2 authors'), and its
    file's name (GluonCV's parameter format either way: DINOv2's arrays under the reference's names)."""

    name: str

    @property
    def vit(self) -> bool:
        return is_vit(self.name)

    @property
    def model(self) -> str:
        return VIT_MODELS[self.name] if self.vit else f"{GLUONCV_BACKBONES[self.name]}_v1s"

    @property
    def sha1(self) -> str:
        return STORE_SHA1[self.model]

    @property
    def file_name(self) -> str:
        return f"{self.model}_pretrain.params" if self.vit else f"{self.model}-{STORE_HASHES[self.model]}.params"

    @property
    def authors_file(self) -> str:
        """The authors' own copy of a DINOv2 backbone (a PyTorch .pth)."""
        return f"{AUTHORS_URL}/{self.model}/{self.model}_pretrain.pth"

    @property
    def hub_repository(self) -> str:
        return HUB_REPOSITORIES[self.name]


def read_manifest(root: Path) -> dict[str, object] | None:
    """The store's manifest (None: no manifest, a store filled by hand or by GluonCV itself)."""
    try:
        content = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def built_without_weights(root: Path) -> bool:
    """Whether the image was built without ImageNet weights (PREFETCH_WEIGHTS=0) and none were imported since."""
    manifest = read_manifest(root)
    return manifest is not None and not manifest.get("files")


def backbone_weights_file(backbone: str, root: Path) -> Path:
    """GluonCV's file for the ImageNet weights of `backbone` in `root`; ClientError that says how to fix a miss."""
    entry = Backbone(backbone)
    expected = root / entry.file_name
    if expected.is_file():
        return expected
    others = sorted(root.glob(f"{entry.model}*.params")) if root.is_dir() else []
    if others:
        log.warning("Using %s for %s (expected the file name %s)", others[0], entry.model, expected.name)
        return others[0]
    cause = (
        "this image was built without ImageNet weights (PREFETCH_WEIGHTS=0)"
        if built_without_weights(root)
        else f"{expected} is missing (looked in {root}, which is $MXNET_HOME/models)"
    )
    raise ClientError(
        f"use_pretrained_model=True needs the {'DINOv2' if entry.vit else 'ImageNet'} weights of the {backbone} "
        f"backbone, but {cause}. This image "
        "never downloads at train time. Either set use_pretrained_model=False to train the backbone from scratch; "
        "or rebuild the image with the weights baked in (the default, PREFETCH_WEIGHTS=1: `semseg-weights fetch` "
        "at build time); or add them in a derived image: COPY the file and RUN `semseg-weights import FILE` "
        "(GluonCV .params, timm's or the Hub's .safetensors, or .pth; see docs/training.md, 'Pretrained weights')."
    )
