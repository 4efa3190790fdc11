"""DINOv2's weights under transformers' names (the Hub's `facebook/dinov2-small` and `-base`: `embeddings.*`,
`encoder.layer.<i>.*`, `layernorm.*`, with an optional `dinov2.` prefix; the query, key and value projections
apart, as `attention.attention.query` in the Hub's files or `attention.q_proj` in transformers 5's) -> the
reference implementation's names (`pos_embed`, `blocks.<i>.attn.qkv`, `norm.*`), which the store and the torch
engine use. The query, key and value are stacked in that order, as the reference's `qkv` projection holds them.
`mask_token` (pretraining only) is dropped; so are arrays of neither layout (a classifier, a pooler)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_IN_BLOCK = {  # transformers' names within encoder.layer.<i> -> the reference's within blocks.<i>
    "norm1": "norm1",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
}
_QKV = {  # the parts of the reference's qkv, in its order
    "query": ("attention.attention.query", "attention.q_proj"),
    "key": ("attention.attention.key", "attention.k_proj"),
    "value": ("attention.attention.value", "attention.v_proj"),
}
_BLOCK = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")


def is_dinov2(arrays: Mapping[str, np.ndarray]) -> bool:
    """Whether these are DINOv2's arrays, under either name layout."""
    names = {name.removeprefix("dinov2.") for name in arrays}
    return "pos_embed" in names or "embeddings.position_embeddings" in names


def reference_names(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays under the reference's names (arrays already named so pass unchanged)."""
    arrays = {name.removeprefix("dinov2."): array for name, array in arrays.items()}
    if "pos_embed" in arrays:
        return {name: array for name, array in arrays.items() if name != "mask_token"}
    out: dict[str, np.ndarray] = {}
    parts: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # (block, weight|bias) -> query/key/value
    for name, array in arrays.items():
        if name in _TOP:
            out[_TOP[name]] = array
            continue
        match = _BLOCK.match(name)
        if not match:
            continue
        block, rest = match.groups()
        stem, _, leaf = rest.rpartition(".")
        if rest in _IN_BLOCK:  # layer_scale<k>.lambda1: no leaf of its own
            out[f"blocks.{block}.{_IN_BLOCK[rest]}"] = array
        elif stem in _IN_BLOCK:
            out[f"blocks.{block}.{_IN_BLOCK[stem]}.{leaf}"] = array
        else:
            for part, names in _QKV.items():
                if stem in names:
                    parts.setdefault((block, leaf), {})[part] = array
    for (block, leaf), found in parts.items():
        if len(found) == len(_QKV):  # an incomplete triple is left out: the store's check names what is missing
            out[f"blocks.{block}.attn.qkv.{leaf}"] = np.concatenate([found[part] for part in _QKV])
    return out
