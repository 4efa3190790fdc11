"""GluonCV's FCN, PSPNet and DeepLabV3 on dilated resnet50_v1s / resnet101_v1s, as PyTorch modules.

Every module has the attribute path of its Gluon twin (`layer3.0.conv2`, `head.aspp.concurent.4.gap.1`,
`auxlayer.block.4`), so a GluonCV parameter file maps onto `state_dict()` by name, with BatchNorm's
`gamma`/`beta` called `weight`/`bias` (see `convert.py`). What makes the outputs equal GluonCV's:
- the v1s stem (three 3x3 convolutions, 64-64-128 wide), stride 8 by dilation: stage 3 dilation 2 with its
  first block at 1, stage 4 dilation 4 with its first block at 2 (GluonCV's `_make_layer`);
- BatchNorm eps 1e-5 and MXNet's momentum 0.9, which is PyTorch's 0.1 (the weight of the new batch), and
  MXNet's running variance (the biased one: `MXNetBatchNorm`);
- `BilinearResize2D` is `interpolate(mode="bilinear", align_corners=True)`, `AdaptiveAvgPooling2D` is
  `adaptive_avg_pool2d`; pooled features are resized to the feature map's own size, so any input size works
  without GluonCV's baked-in output sizes.
Weights start as our MXNet networks do: Xavier(magnitude=2) for convolutions, zero biases, BatchNorm 1/0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from semseg.engines.architecture import (
    ASPP_RATES,
    BACKBONE_BLOCKS,
    BN_EPS,
    BN_MOMENTUM,
    DECODER_CHANNELS,
    HEAD_LR_MULT,
    LOW_LEVEL_CHANNELS,
    PSP_BINS,
    STEM_WIDTH,
)  # fmt: skip
from semseg.engines.weights import BACKBONE_PARTS

TORCH_BN_MOMENTUM = 1 - BN_MOMENTUM  # PyTorch's convention: the weight of the new batch

Norm = Callable[[int], nn.Module]


class MXNetBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose running variance follows MXNet's: the batch's biased variance (PyTorch's own uses the
    unbiased one, n/(n-1) larger; that matters where n is small, e.g. ASPP's pooled branch, n = batch size).

    The batch-norm kernel PyTorch picks (cuDNN on GPUs) normalises with the biased variance either way and
    hands back the batch mean and 1/sqrt(var + eps), so the running statistics are updated from those: no
    extra pass over the data.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        out, mean, invstd, _, _ = torch.ops.aten._batch_norm_impl_index(
            x, self.weight, self.bias, None, None, True, 0.0, self.eps, torch.backends.cudnn.enabled
        )
        momentum = self.momentum if self.momentum is not None else BN_MOMENTUM
        with torch.no_grad():
            assert self.running_mean is not None and self.running_var is not None
            self.running_mean.lerp_(mean.float(), momentum)
            self.running_var.lerp_(invstd.float().pow(-2) - self.eps, momentum)
        return out


def batch_norm(channels: int) -> nn.Module:
    return MXNetBatchNorm(channels, eps=BN_EPS, momentum=TORCH_BN_MOMENTUM)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=False)


class Bottleneck(nn.Module):
    """GluonCV's BottleneckV1b: stride and dilation on the 3x3 convolution."""

    def __init__(
        self, cin: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None, norm: Norm
    ) -> None:
        super().__init__()
        self.conv1 = _conv(cin, planes, 1)
        self.bn1 = norm(planes)
        self.conv2 = _conv(planes, planes, 3, stride, dilation, dilation)
        self.bn2 = norm(planes)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = norm(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


def _stage(cin: int, planes: int, blocks: int, stride: int, dilation: int, norm: Norm) -> nn.Sequential:
    downsample = None
    if stride != 1 or cin != planes * 4:
        downsample = nn.Sequential(_conv(cin, planes * 4, 1, stride), norm(planes * 4))
    first_dilation = 1 if dilation in (1, 2) else 2
    layers = [Bottleneck(cin, planes, stride, first_dilation, downsample, norm)]
    layers += [Bottleneck(planes * 4, planes, 1, dilation, None, norm) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _fcn_block(cin: int, classes: int, norm: Norm) -> nn.Sequential:
    inter = cin // 4
    return nn.Sequential(
        _conv(cin, inter, 3, padding=1), norm(inter), nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(inter, classes, 1)
    )


class _FCNHead(nn.Module):
    def __init__(self, cin: int, classes: int, norm: Norm) -> None:
        super().__init__()
        self.block = _fcn_block(cin, classes, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def _conv_bn_relu(cin: int, cout: int, norm: Norm, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = dilation if kernel == 3 else 0
    return nn.Sequential(_conv(cin, cout, kernel, padding=padding, dilation=dilation), norm(cout), nn.ReLU())


class _PyramidPooling(nn.Module):
    def __init__(self, cin: int, norm: Norm) -> None:
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", _conv_bn_relu(cin, cin // 4, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        feats = [x]
        for i, bins in enumerate(PSP_BINS, 1):
            pooled = getattr(self, f"conv{i}")(F.adaptive_avg_pool2d(x, bins))
            feats.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=True))
        return torch.cat(feats, dim=1)


class _PSPHead(nn.Module):
    def __init__(self, classes: int, norm: Norm, cin: int = 2048) -> None:
        super().__init__()
        self.psp = _PyramidPooling(cin, norm)
        self.block = nn.Sequential(
            _conv(2 * cin, cin // 4, 3, padding=1),
            norm(cin // 4),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Conv2d(cin // 4, classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.psp(x))


class _AsppPooling(nn.Module):
    def __init__(self, cin: int, cout: int, norm: Norm) -> None:
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv(cin, cout, 1), norm(cout), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.gap(x), size=x.shape[2:], mode="bilinear", align_corners=True)


class _Concurrent(nn.Sequential):
    """Gluon's HybridConcurrent(axis=1): every child on the same input, outputs concatenated."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self], dim=1)


class _ASPP(nn.Module):
    def __init__(self, cin: int, norm: Norm, cout: int = 256) -> None:
        super().__init__()
        branches = [_conv_bn_relu(cin, cout, norm)]
        branches += [_conv_bn_relu(cin, cout, norm, kernel=3, dilation=rate) for rate in ASPP_RATES]
        self.concurent = _Concurrent(*branches, _AsppPooling(cin, cout, norm))  # GluonCV's spelling
        self.project = nn.Sequential(_conv(5 * cout, cout, 1), norm(cout), nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.concurent(x))


class _DeepLabHead(nn.Module):
    def __init__(self, classes: int, norm: Norm, cin: int = 2048) -> None:
        super().__init__()
        self.aspp = _ASPP(cin, norm)
        self.block = nn.Sequential(
            _conv(256, 256, 3, padding=1), norm(256), nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(256, classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.aspp(x))


class _DeepLabV3PlusHead(nn.Module):
    """semseg.engines.mxnet.deeplabv3plus's head: ASPP, the decoder on the stride-4 features, the classifier."""

    def __init__(self, classes: int, norm: Norm) -> None:
        super().__init__()
        self.aspp = _ASPP(2048, norm)
        self.reduce = _conv_bn_relu(256, LOW_LEVEL_CHANNELS, norm)
        self.block = nn.Sequential(
            *_conv_bn_relu(DECODER_CHANNELS + LOW_LEVEL_CHANNELS, DECODER_CHANNELS, norm, kernel=3),
            *_conv_bn_relu(DECODER_CHANNELS, DECODER_CHANNELS, norm, kernel=3),
            nn.Dropout(0.1),
            nn.Conv2d(DECODER_CHANNELS, classes, 1),
        )

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = self.reduce(low)
        x = F.interpolate(self.aspp(x), size=low.shape[2:], mode="bilinear", align_corners=True)
        return self.block(torch.cat([x, low], dim=1))


def _head(algorithm: str, classes: int, norm: Norm) -> nn.Module:
    if algorithm == "deeplabv3plus":
        return _DeepLabV3PlusHead(classes, norm)
    if algorithm == "fcn":
        return _FCNHead(2048, classes, norm)
    if algorithm == "psp":
        return _PSPHead(classes, norm)
    if algorithm == "deeplab":
        return _DeepLabHead(classes, norm)
    raise ValueError(f"unknown algorithm {algorithm!r}")


class _LinearHead(nn.Module):
    """DINOv2's linear head ("lin."): BatchNorm on the patch tokens and a 1x1 convolution to the classes."""

    def __init__(self, cin: int, classes: int, norm: Norm) -> None:
        super().__init__()
        self.block = nn.Sequential(norm(cin), nn.Conv2d(cin, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def vit_head(algorithm: str, cin: int, classes: int, norm: Norm) -> nn.Module:
    """The head of `algorithm` on a ViT's token map of `cin` channels (no stride-4 features: no deeplabv3plus)."""
    if algorithm == "linear":
        return _LinearHead(cin, classes, norm)
    if algorithm == "fcn":
        return _FCNHead(cin, classes, norm)
    if algorithm == "psp":
        return _PSPHead(classes, norm, cin)
    if algorithm == "deeplab":
        return _DeepLabHead(classes, norm, cin)
    raise ValueError(f"no {algorithm} head on a ViT")


class SegmentationNet(nn.Module):
    """GluonCV's SegBaseModel + head (+ aux FCN head on stage 3): (main, aux) scores at the input's size."""

    backbone_parts = BACKBONE_PARTS  # the name prefixes of the backbone's parameters (what ImageNet weights fill)

    def __init__(self, algorithm: str, backbone: str, classes: int, *, aux: bool = True, norm: Norm = batch_norm):
        super().__init__()
        self.conv1 = nn.Sequential(
            _conv(3, STEM_WIDTH, 3, 2, 1),
            norm(STEM_WIDTH),
            nn.ReLU(),
            _conv(STEM_WIDTH, STEM_WIDTH, 3, 1, 1),
            norm(STEM_WIDTH),
            nn.ReLU(),
            _conv(STEM_WIDTH, 2 * STEM_WIDTH, 3, 1, 1),
        )
        self.bn1 = norm(2 * STEM_WIDTH)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks = BACKBONE_BLOCKS[backbone]
        self.layer1 = _stage(128, 64, blocks[0], 1, 1, norm)
        self.layer2 = _stage(256, 128, blocks[1], 2, 1, norm)
        self.layer3 = _stage(512, 256, blocks[2], 1, 2, norm)
        self.layer4 = _stage(1024, 512, blocks[3], 1, 4, norm)
        self.head = _head(algorithm, classes, norm)
        self.auxlayer = _FCNHead(1024, classes, norm) if aux else None
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        size = x.shape[2:]
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c3 = self.layer3(self.layer2(c1))
        c4 = self.layer4(c3)
        head = self.head(c4, c1) if isinstance(self.head, _DeepLabV3PlusHead) else self.head(c4)
        outputs = [F.interpolate(head, size=size, mode="bilinear", align_corners=True)]
        if self.auxlayer is not None:
            outputs.append(F.interpolate(self.auxlayer(c3), size=size, mode="bilinear", align_corners=True))
        return tuple(outputs)

    def reset_parameters(self) -> None:
        """MXNet's Xavier(magnitude=2) ("avg" fan, uniform) for convolutions; zero biases; BatchNorm 1 and 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                receptive = module.kernel_size[0] * module.kernel_size[1]
                fans = (module.in_channels + module.out_channels) * receptive / 2
                bound = math.sqrt(2.0 / fans)
                nn.init.uniform_(module.weight, -bound, bound)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()

    def param_groups(self, lr: float, backbone_mult: float = 1.0) -> list[dict[str, object]]:
        """The backbone at `backbone_mult` x `lr`, the heads at HEAD_LR_MULT x `lr` (GluonCV's lr_mult)."""
        heads = [p for name, p in self.named_parameters() if name.startswith(("head.", "auxlayer."))]
        ids = {id(p) for p in heads}
        backbone = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": backbone, "lr_mult": backbone_mult}, {"params": heads, "lr_mult": HEAD_LR_MULT}]
