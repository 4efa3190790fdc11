"""The networks' facts, written once for every place that builds one: GluonCV's dilated ResNetV1s backbones and
the heads of FCN, PSPNet, DeepLabV3 and DeepLabV3+ (the MXNet engine's DeepLabV3+, the PyTorch mirror and the
ONNX graph all read them here). No framework."""

from __future__ import annotations

BACKBONE_BLOCKS = {"resnet-50": (3, 4, 6, 3), "resnet-101": (3, 4, 23, 3)}  # bottleneck blocks per stage
STEM_WIDTH = 64  # ResNetV1s' deep stem: three 3x3 convolutions, the first two of this width
BN_EPS = 1e-5  # Gluon BatchNorm's epsilon
BN_MOMENTUM = 0.9  # Gluon BatchNorm's momentum (the weight of the running statistics)
PSP_BINS = (1, 2, 3, 6)  # PSPNet's pyramid pooling sizes
ASPP_RATES = (12, 24, 36)  # DeepLabV3's atrous rates, at output stride 8
LOW_LEVEL_CHANNELS = 48  # DeepLabV3+'s projection of the stride-4 features
DECODER_CHANNELS = 256  # DeepLabV3+'s decoder width
HEAD_LR_MULT = 10.0  # GluonCV's lr_mult on every parameter of `head` and `auxlayer`
