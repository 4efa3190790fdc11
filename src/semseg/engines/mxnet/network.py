"""Build GluonCV's FCN / PSPNet / DeepLabV3 (and our DeepLabV3+ of GluonCV's parts); load ImageNet backbone
weights and model folders.

Pretrained weights are never downloaded: they are looked up in `$MXNET_HOME/models` (GluonCV's own
store; the image fills it at build time) under GluonCV's file name `resnet50_v1s-<hash>.params`.
A model folder (a job's /opt/ml/model, ours or the managed algorithm's) is `hyperparams.json` plus
`model_best.params`, else `model_algo-1`: `model_folder.read_model_folder` + `load_model` turn it into a ready network
(incremental training, and the inference server).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import mxnet as mx
from mxnet.gluon import HybridBlock

from semseg.contract.config import OUTPUT_STRIDE, Config
from semseg.contract.errors import ClientError
from semseg.contract.model_folder import ModelFolder
from semseg.engines.gluon_files import read_arrays
from semseg.engines.mxnet.deeplabv3plus import DeepLabV3Plus
from semseg.engines.mxnet.gluoncv_import import FCN, DeepLabV3, PSPNet
from semseg.engines.weights import BACKBONE_PARTS, GLUONCV_BACKBONES, backbone_weights_file

log = logging.getLogger(__name__)

MODEL_CLASSES = {"fcn": FCN, "psp": PSPNet, "deeplab": DeepLabV3, "deeplabv3plus": DeepLabV3Plus}
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
    norm_layer, norm_kwargs = _norm(config, contexts)
    with contextlib.redirect_stdout(io.StringIO()):  # PSPNet's constructor prints its crop size
        net = MODEL_CLASSES[config.algorithm](
            config.num_classes,
            backbone=GLUONCV_BACKBONES[config.backbone],
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
        load_backbone(net, backbone_weights_file(config.backbone, weights_root))
    return net


def _norm(config: Config, contexts: Sequence[mx.Context]) -> tuple[type, dict[str, int] | None]:
    if not config.syncbn or len(contexts) < 2:
        return mx.gluon.nn.BatchNorm, None
    if contexts[0].device_type != "gpu":
        # MXNet 1.9.1's SyncBatchNorm deadlocks on several CPU contexts: it waits for its peers while holding
        # an entry of the scratch-space pool that all CPU contexts share (GPUs have one each); see the README.
        log.warning("syncbn=True: SyncBatchNorm runs on GPUs only; %d CPU contexts use BatchNorm", len(contexts))
        return mx.gluon.nn.BatchNorm, None
    return mx.gluon.contrib.nn.SyncBatchNorm, {"num_devices": len(contexts)}


def load_backbone(net: HybridBlock, path: Path) -> None:
    """Copy ImageNet weights (a GluonCV file) into the backbone part of `net`; ClientError if the file does not fit."""
    saved = read_arrays(path, "Pretrained weight file")
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
        params[name].set_data(mx.nd.array(saved[name], dtype=params[name].dtype))
    log.info("Loaded ImageNet backbone weights from %s (%d tensors)", path, len(wanted))


def load_weights(
    net: HybridBlock, path: Path, contexts: Sequence[mx.Context], what: str, *, ignore_extra: bool = False
) -> None:
    """Load a whole network's parameters (a model or a checkpoint); ClientError if they do not fit.

    `ignore_extra`: the file may hold more (the aux head's weights, when `net` has none).
    """
    try:
        path.open("rb").close()  # MXNet would say only that it failed to open the file
        net.load_parameters(str(path), ctx=list(contexts), ignore_extra=ignore_extra)
    except OSError as exc:
        raise ClientError(
            f"The weights of {what} ({path}) cannot be read: {exc.strerror}. Make the file readable."
        ) from None
    except (mx.MXNetError, AssertionError, ValueError) as exc:
        raise ClientError(f"The weights of {what} ({path}) do not fit this network: {_first_line(exc)}") from None


def load_model(
    model: ModelFolder, contexts: Sequence[mx.Context], *, config: Config | None = None, aux: bool = False
) -> HybridBlock:
    """The network of a model folder with its weights, on `contexts`.

    `config` builds it with this job's settings instead (syncbn, pretrained flag); the caller has checked
    that it agrees with the folder's on the network's shape. Without the aux head, its weights are skipped.
    """
    if model.config.vit:
        raise ClientError(
            f"The model in {model.path} is a DINOv2 network ({model.config.backbone}), which MXNet cannot run: serve "
            "it from its model.onnx in the CPU image (SEMSEG_SERVE_MODEL unset), or in the torch image"
        )
    plain = replace(config or model.config, use_pretrained_model=False)
    net = build_model(plain, contexts, aux=aux)
    load_weights(net, model.weights, contexts, f"the model in {model.path}", ignore_extra=not aux)
    log.info("Loaded %s", model.weights)
    return net


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
    """Side of the dilated ResNet's feature map for an input side (a ceil halving per factor 2 of the stride)."""
    stride = 1
    while stride < OUTPUT_STRIDE:
        side, stride = -(-side // 2), stride * 2
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
