"""DINOv2's ViT-S/14 and ViT-B/14 (facebookresearch/dinov2, Apache-2.0) as a segmentation network: the backbone's
last-layer patch tokens (after its final LayerNorm) as a feature map at stride 14, and a head on it.

Parameter names are the reference implementation's (`blocks.3.attn.qkv.weight`, `pos_embed`), so its
`dinov2_vits14_pretrain.pth` loads by name, and transformers' `Dinov2Model` after renaming (semseg.store.arrays).
What makes the patch tokens equal the reference's (tests/functional/test_dinov2.py holds them to transformers'):
- an image whose sides are not multiples of 14 is padded with zeros (after normalisation) to the next multiple,
  centred, as the authors' segmentation code (`CenterPadding`); the scores are cropped back to the image;
- the position embeddings of the 37x37 grid are resized bicubically to the image's patch grid, in float32, without
  antialiasing, to the grid's size (transformers' `Dinov2Model`, and the reference with `interpolate_offset=0`;
  the torch hub's models scale by (grid + 0.1) / 37 instead, which moves each position by under a tenth of a patch);
- pre-norm blocks: x + ls1 * attn(norm1(x)), then x + ls2 * mlp(norm2(x)); LayerNorm eps 1e-6; exact GELU.
Heads: `linear` is the authors' "lin." setting (BatchNorm and a 1x1 convolution on the patch tokens); `fcn`,
`psp` and `deeplab` are GluonCV's heads (semseg.engines.torch.network) on the token map. Scores are upsampled
bilinearly (half-pixel, as mmsegmentation's `align_corners=False`) to the padded image, then cropped.
A frozen backbone (backbone_lr_multiplier=0) runs without autograd: no gradients, no optimizer state for it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from semseg.engines.architecture import (
    HEAD_LR_MULT,
    LN_EPS,
    PATCH_SIZE,
    POSITION_GRID,
    VIT_BACKBONE_PARTS,
    VIT_DEPTH,
    VIT_MLP_RATIO,
    VIT_WIDTHS,
)  # fmt: skip
from semseg.engines.torch.network import Norm, batch_norm, vit_head


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * VIT_MLP_RATIO)
        self.fc2 = nn.Linear(dim * VIT_MLP_RATIO, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH_SIZE, PATCH_SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def center_padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zeros that make both sides multiples of the patch size, centred."""
    pads = []
    for side in (width, height):
        total = -side % PATCH_SIZE
        pads += [total // 2, total - total // 2]
    return pads[0], pads[1], pads[2], pads[3]


class DinoV2Net(nn.Module):
    """The DINOv2 backbone (reference names at the top level) and `head`: (scores at the input's size,)."""

    backbone_parts = VIT_BACKBONE_PARTS  # the name prefixes of the backbone's parameters

    def __init__(self, algorithm: str, backbone: str, classes: int, *, norm: Norm = batch_norm) -> None:
        super().__init__()
        dim, heads = VIT_WIDTHS[backbone]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + POSITION_GRID * POSITION_GRID, dim))
        self.patch_embed = PatchEmbed(dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(VIT_DEPTH))
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.head = vit_head(algorithm, dim, classes, norm)
        self.frozen = False
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        height, width = x.shape[2:]
        left, right, top, bottom = center_padding(height, width)
        padded = F.pad(x, (left, right, top, bottom))
        if self.frozen:
            with torch.no_grad():
                features = self.features(padded)
        else:
            features = self.features(padded)
        scores = F.interpolate(self.head(features), size=padded.shape[2:], mode="bilinear", align_corners=False)
        return (scores[:, :, top : top + height, left : left + width],)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer's normalised patch tokens as a map [N, dim, H/14, W/14] (H, W multiples of 14)."""
        rows, cols = x.shape[2] // PATCH_SIZE, x.shape[3] // PATCH_SIZE
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), self.patch_embed(x)], dim=1)
        tokens = tokens + self.positions(rows, cols).to(tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens)
        patches = self.norm(tokens)[:, 1:]
        return patches.transpose(1, 2).reshape(x.shape[0], -1, rows, cols)

    def positions(self, rows: int, cols: int) -> torch.Tensor:
        """The position embeddings for a grid of `rows` x `cols` patches (float32)."""
        embed = self.pos_embed.float()
        grid = embed[:, 1:].reshape(1, POSITION_GRID, POSITION_GRID, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False, antialias=False)
        return torch.cat([embed[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)

    def freeze_backbone(self) -> None:
        """backbone_lr_multiplier=0: the backbone's parameters take no gradient and run without autograd."""
        self.frozen = True
        for name, parameter in self.named_parameters():
            if not name.startswith("head."):
                parameter.requires_grad_(False)

    def reset_parameters(self) -> None:
        """The reference's initialisation: truncated normal (std 0.02) for the position embeddings and every
        Linear (zero biases), a class token of std 1e-6, LayerScale 1 (the hub models' init_values), LayerNorm 1/0;
        the head as the other networks' (MXNet's Xavier)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        for module in self.head.modules():
            if isinstance(module, nn.Conv2d):
                fans = (module.in_channels + module.out_channels) * module.kernel_size[0] * module.kernel_size[1] / 2
                bound = math.sqrt(2.0 / fans)
                nn.init.uniform_(module.weight, -bound, bound)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def param_groups(self, lr: float, backbone_mult: float) -> list[dict[str, object]]:
        """The backbone at `backbone_mult` x `lr` (none where it is frozen), the head at HEAD_LR_MULT x `lr`."""
        head = [p for name, p in self.named_parameters() if name.startswith("head.")]
        groups: list[dict[str, object]] = [{"params": head, "lr_mult": HEAD_LR_MULT}]
        backbone = [p for name, p in self.named_parameters() if not name.startswith("head.") and p.requires_grad]
        if backbone:
            groups.insert(0, {"params": backbone, "lr_mult": backbone_mult})
        return groups
