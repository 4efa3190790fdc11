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
BOTTLENECK_PLANES = (64, 128, 256, 512)  # each stage's inner width; its blocks put out 4x as many channels
EXPANSION = 4


def backbone_shapes(backbone: str) -> dict[str, tuple[int, ...]]:
    """GluonCV's parameter names and shapes of the ResNetV1s `backbone` (resnet-50, resnet-101) in a segmentation
    network or an ImageNet classifier: the deep stem, `bn1` and the four stages (not the classifier `fc`)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, out: int, into: int, kernel: int) -> None:
        shapes[f"{name}.weight"] = (out, into, kernel, kernel)

    def norm(name: str, channels: int) -> None:
        shapes.update({f"{name}.{part}": (channels,) for part in ("gamma", "beta", "running_mean", "running_var")})

    conv("conv1.0", STEM_WIDTH, 3, 3)
    norm("conv1.1", STEM_WIDTH)
    conv("conv1.3", STEM_WIDTH, STEM_WIDTH, 3)
    norm("conv1.4", STEM_WIDTH)
    conv("conv1.6", 2 * STEM_WIDTH, STEM_WIDTH, 3)
    norm("bn1", 2 * STEM_WIDTH)
    into = 2 * STEM_WIDTH
    for stage, (blocks, planes) in enumerate(zip(BACKBONE_BLOCKS[backbone], BOTTLENECK_PLANES, strict=True), 1):
        for block in range(blocks):
            name = f"layer{stage}.{block}"
            conv(f"{name}.conv1", planes, into, 1)
            norm(f"{name}.bn1", planes)
            conv(f"{name}.conv2", planes, planes, 3)
            norm(f"{name}.bn2", planes)
            conv(f"{name}.conv3", planes * EXPANSION, planes, 1)
            norm(f"{name}.bn3", planes * EXPANSION)
            if block == 0:
                conv(f"{name}.downsample.0", planes * EXPANSION, into, 1)
                norm(f"{name}.downsample.1", planes * EXPANSION)
            into = planes * EXPANSION
    return shapes


# DINOv2's ViT backbones (facebookresearch/dinov2, Apache-2.0): 14x14 patches, a class token, position embeddings
# for a 518x518 image (37x37 patches) resized bicubically to each input's patch grid (to its size, as transformers'
# Dinov2Model and the reference with interpolate_offset=0; the torch hub's models keep a 0.1 offset on the scale
# factor, which their code calls a historical kludge), pre-norm blocks with LayerScale, LayerNorm eps 1e-6, GELU
# MLPs four times as wide.
VIT_WIDTHS = {"dinov2-small": (384, 6), "dinov2-base": (768, 12)}  # embedding width, attention heads
VIT_DEPTH = 12
VIT_MLP_RATIO = 4
PATCH_SIZE = 14
POSITION_GRID = 37  # patches per side of the position embeddings (518 / 14)
LN_EPS = 1e-6
VIT_MODELS = {"dinov2-small": "dinov2_vits14", "dinov2-base": "dinov2_vitb14"}  # the authors' model names
VIT_BACKBONE_PARTS = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.")  # the reference's names


def is_vit(backbone: str) -> bool:
    return backbone in VIT_WIDTHS


def vit_shapes(backbone: str) -> dict[str, tuple[int, ...]]:
    """The reference implementation's parameter names and shapes of the DINOv2 `backbone` (dinov2_vits14_pretrain.pth
    without `mask_token`, which only pretraining uses)."""
    dim, _ = VIT_WIDTHS[backbone]
    hidden = dim * VIT_MLP_RATIO
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1 + POSITION_GRID * POSITION_GRID, dim),
        "patch_embed.proj.weight": (dim, 3, PATCH_SIZE, PATCH_SIZE),
        "patch_embed.proj.bias": (dim,),
    }
    for block in range(VIT_DEPTH):
        name = f"blocks.{block}"
        for part, (out, into) in {"attn.qkv": (3 * dim, dim), "attn.proj": (dim, dim), "mlp.fc1": (hidden, dim),
                                  "mlp.fc2": (dim, hidden)}.items():  # fmt: skip
            shapes[f"{name}.{part}.weight"] = (out, into)
            shapes[f"{name}.{part}.bias"] = (out,)
        for part in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "ls1.gamma", "ls2.gamma"):
            shapes[f"{name}.{part}"] = (dim,)
    shapes["norm.weight"] = (dim,)
    shapes["norm.bias"] = (dim,)
    return shapes
