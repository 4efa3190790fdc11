"""DINOv2's ViT in the ONNX graph (semseg.export.graph's builder `g`), as semseg.engines.torch.dinov2 computes it:
centred zero padding to multiples of 14 (sizes read at run time), the patch convolution, the class token, the
position embeddings resized bicubically to the patch grid (Resize cubic, half-pixel, a = -0.75: PyTorch's
bicubic), pre-norm blocks (LayerNormalization, attention as MatMul and Softmax, exact GELU from Erf, LayerScale),
the final LayerNorm, and the patch tokens as a map. The linear head's BatchNorm is folded into its 1x1
convolution; the scores are resized to the padded image (half-pixel, as align_corners=False) and cropped."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from semseg.engines.architecture import BN_EPS, LN_EPS, PATCH_SIZE, POSITION_GRID, VIT_DEPTH, VIT_WIDTHS


def padding(g: Any, x: str) -> tuple[str, str]:
    """(`x` padded with zeros to multiples of the patch size, centred; the [top, left] of the image in it)."""
    shape = g.node("Shape", [x], "pad.shape")
    hw = g.node("Slice", [shape, "i2", "i4"], "pad.hw")
    patch = g.const("pad.patch", np.array([PATCH_SIZE], dtype=np.int64))
    total = g.node(
        "Mod", [g.node("Sub", [patch, g.node("Mod", [hw, patch], "pad.rem")], "pad.short"), patch], "pad.total"
    )
    before = g.node("Div", [total, g.const("pad.two", np.array([2], dtype=np.int64))], "pad.before")
    after = g.node("Sub", [total, before], "pad.after")
    zeros = g.const("pad.zeros", np.zeros(2, dtype=np.int64))
    pads = g.node("Concat", [zeros, before, zeros, after], "pad.pads", axis=0)
    return g.node("Pad", [x, pads], "padded", mode="constant"), before


def crop(g: Any, scores: str, image: str, before: str) -> str:
    """`scores` of the padded image cut back to `image`'s height and width."""
    hw = g.node("Slice", [g.node("Shape", [image], "crop.shape"), "i2", "i4"], "crop.hw")
    ends = g.node("Add", [before, hw], "crop.ends")
    axes = g.const("crop.axes", np.array([2, 3], dtype=np.int64))
    return g.node("Slice", [scores, before, ends, axes], "crop")


def features(g: Any, padded: str, backbone: str) -> str:
    """The last layer's normalised patch tokens of `padded` as a map [N, dim, rows, cols]."""
    dim, heads = VIT_WIDTHS[backbone]
    grid = g.node("Conv", [padded, g.const("patch.w", g.param("patch_embed.proj.weight").astype(np.float32)),
                           g.const("patch.b", g.param("patch_embed.proj.bias").astype(np.float32))],
                  "patch_embed.proj", kernel_shape=[PATCH_SIZE] * 2, strides=[PATCH_SIZE] * 2)  # fmt: skip
    grid_shape = g.node("Shape", [grid], "grid.shape")
    flat = g.node("Reshape", [grid, g.const("flat.shape", np.array([0, dim, -1], dtype=np.int64))], "patch.flat")
    patches = g.node("Transpose", [flat], "patch.tokens", perm=[0, 2, 1])
    batch = g.node("Slice", [grid_shape, "i0", "i1"], "batch")
    cls_shape = g.node("Concat", [batch, g.const("cls.rest", np.array([1, dim], dtype=np.int64))], "cls.shape", axis=0)
    cls = g.node("Expand", [g.const("cls", g.param("cls_token").astype(np.float32)), cls_shape], "cls.tokens")
    tokens = g.node("Concat", [cls, patches], "tokens", axis=1)
    tokens = g.node("Add", [tokens, _positions(g, grid_shape, dim)], "tokens.pos")
    for block in range(VIT_DEPTH):
        tokens = _block(g, tokens, f"blocks.{block}", dim, heads)
    tokens = _layer_norm(g, tokens, "norm")
    patch_tokens = g.node(
        "Slice", [tokens, "i1", g.const("big", np.array([1 << 62], dtype=np.int64)), "i1"], "out.patches"
    )
    channels_first = g.node("Transpose", [patch_tokens], "out.cf", perm=[0, 2, 1])
    return g.node("Reshape", [channels_first, grid_shape], "features")


def _positions(g: Any, grid_shape: str, dim: int) -> str:
    embed = g.param("pos_embed").astype(np.float32)
    square = embed[:, 1:].reshape(1, POSITION_GRID, POSITION_GRID, dim).transpose(0, 3, 1, 2)
    sizes = g.node("Concat", [g.const("pos.nc", np.array([1, dim], dtype=np.int64)),
                              g.node("Slice", [grid_shape, "i2", "i4"], "pos.hw")], "pos.sizes", axis=0)  # fmt: skip
    resized = g.node("Resize", [g.const("pos.grid", np.ascontiguousarray(square)), "", "", sizes], "pos.resized",
                     mode="cubic", cubic_coeff_a=-0.75, coordinate_transformation_mode="half_pixel")  # fmt: skip
    flat = g.node("Reshape", [resized, g.const("pos.flat", np.array([1, dim, -1], dtype=np.int64))], "pos.flat_")
    patches = g.node("Transpose", [flat], "pos.patches", perm=[0, 2, 1])
    return g.node("Concat", [g.const("pos.cls", embed[:, :1]), patches], "pos", axis=1)


def _layer_norm(g: Any, x: str, name: str) -> str:
    scale = g.const(f"{name}.g", g.param(f"{name}.weight").astype(np.float32))
    bias = g.const(f"{name}.b", g.param(f"{name}.bias").astype(np.float32))
    return g.node("LayerNormalization", [x, scale, bias], name, axis=-1, epsilon=LN_EPS)


def _linear(g: Any, x: str, name: str) -> str:
    weight = g.const(f"{name}.wt", np.ascontiguousarray(g.param(f"{name}.weight").T.astype(np.float32)))
    bias = g.const(f"{name}.b", g.param(f"{name}.bias").astype(np.float32))
    return g.node("Add", [g.node("MatMul", [x, weight], f"{name}.mm"), bias], name)


def _block(g: Any, x: str, name: str, dim: int, heads: int) -> str:
    attended = _attention(g, _layer_norm(g, x, f"{name}.norm1"), f"{name}.attn", dim, heads)
    gamma1 = g.const(f"{name}.ls1", g.param(f"{name}.ls1.gamma").astype(np.float32))
    x = g.node("Add", [x, g.node("Mul", [attended, gamma1], f"{name}.ls1.out")], f"{name}.res1")
    hidden = _linear(g, _layer_norm(g, x, f"{name}.norm2"), f"{name}.mlp.fc1")
    erf = g.node("Erf", [g.node("Mul", [hidden, "vit.rsqrt2"], f"{name}.mlp.s")], f"{name}.mlp.erf")
    gelu = g.node("Mul", [g.node("Mul", [hidden, "vit.half"], f"{name}.mlp.h"),
                          g.node("Add", [erf, "vit.onef"], f"{name}.mlp.e1")], f"{name}.mlp.gelu")  # fmt: skip
    out = _linear(g, gelu, f"{name}.mlp.fc2")
    gamma2 = g.const(f"{name}.ls2", g.param(f"{name}.ls2.gamma").astype(np.float32))
    return g.node("Add", [x, g.node("Mul", [out, gamma2], f"{name}.ls2.out")], f"{name}.res2")


def _attention(g: Any, x: str, name: str, dim: int, heads: int) -> str:
    qkv = _linear(g, x, f"{name}.qkv")
    split = g.const(f"{name}.split", np.array([0, 0, 3, heads, dim // heads], dtype=np.int64))
    parts = g.node("Transpose", [g.node("Reshape", [qkv, split], f"{name}.qkv5")], f"{name}.qkvt",
                   perm=[2, 0, 3, 1, 4])  # fmt: skip
    q, k, v = (g.node("Gather", [parts, f"vit.{i}"], f"{name}.{part}", axis=0) for i, part in enumerate("qkv"))
    scale = g.const(f"{name}.scale", np.array(1 / math.sqrt(dim // heads), dtype=np.float32))
    keys = g.node("Transpose", [k], f"{name}.kt", perm=[0, 1, 3, 2])
    scores = g.node("MatMul", [g.node("Mul", [q, scale], f"{name}.qs"), keys], f"{name}.scores")
    mixed = g.node("MatMul", [g.node("Softmax", [scores], f"{name}.softmax", axis=-1), v], f"{name}.mixed")
    merged = g.node("Transpose", [mixed], f"{name}.merged", perm=[0, 2, 1, 3])
    flat = g.node("Reshape", [merged, g.const(f"{name}.flat", np.array([0, 0, dim], dtype=np.int64))], f"{name}.flat_")
    return _linear(g, flat, f"{name}.proj")


def constants(g: Any) -> None:
    """The shared scalars of the blocks."""
    for name, value in {"vit.rsqrt2": 1 / math.sqrt(2), "vit.half": 0.5, "vit.onef": 1.0}.items():
        g.const(name, np.array(value, dtype=np.float32))
    for i in range(3):
        g.const(f"vit.{i}", np.array(i, dtype=np.int64))


def linear_head(g: Any, x: str) -> str:
    """DINOv2's linear head: BatchNorm (head.block.0) folded into the 1x1 convolution after it (head.block.1)."""
    scale = g.param("head.block.0.gamma") / np.sqrt(g.param("head.block.0.running_var") + BN_EPS)
    shift = g.param("head.block.0.beta") - g.param("head.block.0.running_mean") * scale
    weight = g.param("head.block.1.weight")
    folded = weight * scale[None, :, None, None]
    bias = g.param("head.block.1.bias") + weight[:, :, 0, 0] @ shift
    w = g.const("head.block.1.w", folded.astype(np.float32))
    b = g.const("head.block.1.b", bias.astype(np.float32))
    return g.node("Conv", [x, w, b], "head.block.1", kernel_shape=[1, 1])


def upsample(g: Any, scores: str, like: str) -> str:
    """`scores` resized bilinearly (half-pixel, PyTorch's align_corners=False) to `like`'s height and width."""
    nc = g.node("Slice", [g.node("Shape", [scores], "up.sshape"), "i0", "i2"], "up.nc")
    hw = g.node("Slice", [g.node("Shape", [like], "up.lshape"), "i2", "i4"], "up.hw")
    sizes = g.node("Concat", [nc, hw], "up.sizes", axis=0)
    return g.node("Resize", [scores, "", "", sizes], "scores.padded", mode="linear",
                  coordinate_transformation_mode="pytorch_half_pixel")  # fmt: skip
