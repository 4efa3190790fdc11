"""Build GluonCV's FCN / PSPNet / DeepLabV3, load ImageNet backbone weights from the local store.

Pretrained weights are never downloaded: they are looked up in `$MXNET_HOME/models` (GluonCV's own
store; the image fills it at build time) under GluonCV's file name `resnet50_v1s-<hash>.params`.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import mxnet as mx
from gluoncv.model_zoo import FCN, DeepLabV3, PSPNet
from gluoncv.model_zoo.model_store import short_hash
from mxnet.gluon import HybridBlock

from semseg.config import Config
from semseg.errors import ClientError

log = logging.getLogger(__name__)

MODEL_CLASSES = {"fcn": FCN, "psp": PSPNet, "deeplab": DeepLabV3}
BACKBONES = {"resnet-50": "resnet50", "resnet-101": "resnet101"}
BACKBONE_PARTS = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
DEFAULT_BASE_SIZE = 520  # GluonCV's; only stored on the model, not used by its forward pass


def build_model(
    config: Config,
    contexts: Sequence[mx.Context],
    *,
    aux: bool = True,
    weights_root: Path | None = None,
) -> HybridBlock:
    """The segmentation network, initialised on `contexts`, with pretrained backbone weights if asked.

    `weights_root` is GluonCV's store (`$MXNET_HOME/models`); it is only read when
    `config.use_pretrained_model` is set.
    """
    norm_layer, norm_kwargs = _norm(config, len(contexts))
    with contextlib.redirect_stdout(io.StringIO()):  # PSPNet's constructor prints its crop size
        net = MODEL_CLASSES[config.algorithm](
            config.num_classes,
            backbone=BACKBONES[config.backbone],
            aux=aux,
            pretrained_base=False,
            crop_size=config.crop_size,
            base_size=config.base_size or DEFAULT_BASE_SIZE,
            norm_layer=norm_layer,
            norm_kwargs=norm_kwargs,
        )
    net.initialize(mx.init.Xavier(magnitude=2), ctx=list(contexts), force_reinit=True)
    if config.use_pretrained_model:
        if weights_root is None:
            raise ValueError("weights_root is needed when use_pretrained_model is set")
        load_backbone(net, backbone_weights_file(config.backbone, weights_root), contexts)
    return net


def _norm(config: Config, devices: int) -> tuple[type, dict[str, int] | None]:
    if config.syncbn and devices > 1:
        return mx.gluon.contrib.nn.SyncBatchNorm, {"num_devices": devices}
    return mx.gluon.nn.BatchNorm, None


def backbone_weights_file(backbone: str, root: Path) -> Path:
    """GluonCV's file for the ImageNet weights of `backbone`; ClientError that says how to fix a miss."""
    name = f"{BACKBONES[backbone]}_v1s"
    expected = root / f"{name}-{short_hash(name)}.params"
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
        "with the weights baked in (see the README, 'Pretrained weights')."
    )


def load_backbone(net: HybridBlock, path: Path, contexts: Sequence[mx.Context]) -> None:
    """Copy ImageNet weights into the backbone part of `net`; ClientError if the file does not fit."""
    try:
        saved = {k.split(":", 1)[-1]: v for k, v in mx.nd.load(str(path)).items()}
    except mx.MXNetError as exc:
        raise ClientError(f"Pretrained weight file {path} cannot be read ({_first_line(exc)}). Replace it.") from None
    params = net._collect_params_with_prefix()
    wanted = [name for name in params if name.startswith(BACKBONE_PARTS)]
    missing = [name for name in wanted if name not in saved]
    wrong = [name for name in wanted if name in saved and not _fits(saved[name].shape, params[name].shape)]
    if missing or wrong:
        raise ClientError(
            f"Pretrained weight file {path} does not fit the backbone: {len(missing)} missing and {len(wrong)} "
            f"mis-shaped parameters (e.g. {(missing + wrong)[0]}). Replace it with GluonCV's file."
        )
    for name in wanted:
        params[name].set_data(saved[name].astype(params[name].dtype))
    log.info("Loaded ImageNet backbone weights from %s (%d tensors)", path, len(wanted))


def load_weights(net: HybridBlock, path: Path, contexts: Sequence[mx.Context], what: str) -> None:
    """Load a whole network's parameters (a previous job's model); ClientError if they do not fit."""
    try:
        net.load_parameters(str(path), ctx=list(contexts))
    except (mx.MXNetError, AssertionError, ValueError) as exc:
        raise ClientError(f"The weights of {what} ({path}) do not fit this network: {_first_line(exc)}") from None


def materialize(net: HybridBlock, contexts: Sequence[mx.Context], crop_size: int) -> None:
    """Run one inference pass per device so every parameter has its shape and data (no training effect)."""
    for ctx in contexts:
        net(mx.nd.zeros((1, 3, crop_size, crop_size), ctx=ctx))


def _fits(saved: tuple[int, ...], declared: tuple[int, ...]) -> bool:
    """Shapes agree; 0 in a declared shape is a dimension Gluon infers at the first forward pass."""
    return len(saved) == len(declared) and all(d in (0, s) for s, d in zip(saved, declared))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def feature_size(side: int) -> int:
    """Side of the stride-8 feature map of the dilated ResNet for an input side (three ceil halvings)."""
    for _ in range(3):
        side = -(-side // 2)
    return side


def _blocks(block: mx.gluon.Block) -> Iterator[mx.gluon.Block]:
    yield block
    for child in block._children.values():
        yield from _blocks(child)


def set_output_size(net: HybridBlock, height: int, width: int) -> None:
    """Make GluonCV's fixed-size upsampling layers produce `height` x `width` outputs.

    GluonCV bakes the output size (and PSP/DeepLab's pooled feature size) into the layers at build
    time; changing it lets one network score images of any size without rebuilding. Only valid while
    the network runs imperatively (a hybridized graph keeps the sizes it was traced with).
    """
    fh, fw = feature_size(height), feature_size(width)
    for block in _blocks(net):
        up = getattr(block, "_up_kwargs", None)
        if isinstance(up, dict):
            up["height"], up["width"] = (height, width) if block is net else (fh, fw)
