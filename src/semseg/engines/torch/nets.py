"""The network of a configuration: GluonCV's ResNet networks (semseg.engines.torch.network) or DINOv2's
(semseg.engines.torch.dinov2), and its backbone frozen where the configuration says so."""

from __future__ import annotations

from semseg.contract.config import Config
from semseg.engines.architecture import is_vit
from semseg.engines.torch.dinov2 import DinoV2Net
from semseg.engines.torch.network import SegmentationNet

Network = SegmentationNet | DinoV2Net


def build_network(config: Config, *, aux: bool = True) -> Network:
    """The configuration's network, freshly initialised (a ViT has no auxiliary head)."""
    if is_vit(config.backbone):
        return DinoV2Net(config.algorithm, config.backbone, config.num_classes)
    return SegmentationNet(config.algorithm, config.backbone, config.num_classes, aux=aux)


def trainable(net: Network, config: Config) -> Network:
    """`net` with its backbone frozen where backbone_lr_multiplier is 0 (DINOv2's default)."""
    if isinstance(net, DinoV2Net) and config.backbone_lr_mult == 0:
        net.freeze_backbone()
    return net
