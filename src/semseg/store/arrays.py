"""A weight file of any of the formats a backbone is published in, as GluonCV's name -> array map, and the checks
its arrays pass before they enter the store. Formats are told by their content, not their file name: GluonCV's
`.params` (MXNet's NDArray list: semseg.engines.gluon_files), timm's `.safetensors` (read with safetensors' numpy
API, no torch) and PyTorch's `.pth` (read with torch where it is installed). timm's names are GluonCV's structural
names, with BatchNorm's `gamma`/`beta` called `weight`/`bias` and a `num_batches_tracked` counter. DINOv2's come in
the authors' names (`dinov2_vits14_pretrain.pth`) or transformers' (the Hub's `facebook/dinov2-small`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semseg.engines.architecture import BACKBONE_BLOCKS, VIT_WIDTHS, backbone_shapes, is_vit, vit_shapes
from semseg.engines.gluon_files import LIST_MAGIC, FormatError, parse
from semseg.store.dinov2_names import is_dinov2, reference_names

SHOWN = 3  # names a message lists
TORCH_ZIP = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
TORCH_LEGACY = b"\x80"  # a pickle (torch.save's format before 1.6)


class WeightsError(ValueError):
    """A weight file that cannot be read, or whose arrays are not a backbone's: the message says which and why."""


def read_file(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """(its format, name -> array) of the weight file at `path`, as it is named there."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if len(data) >= 8 and int.from_bytes(data[:8], "little") == LIST_MAGIC:
        try:
            return "GluonCV .params", {name.split(":", 1)[-1]: array for name, array in parse(data).items()}
        except FormatError as exc:
            raise WeightsError(f"{path} is a damaged GluonCV .params file: {exc}") from None
    if data[:4] == TORCH_ZIP or data[:1] == TORCH_LEGACY:
        return "PyTorch .pth", _torch_file(path)
    if len(data) >= 9 and data[8:9] == b"{":
        return "safetensors", _safetensors_file(path)
    raise WeightsError(
        f"{path} is neither a GluonCV .params file, a .safetensors file nor a PyTorch .pth file (it starts with "
        f"{data[:8].hex() or 'nothing: it is empty'})"
    )


def _safetensors_file(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return dict(load_file(str(path)))
    except (SafetensorError, ValueError, OSError) as exc:
        raise WeightsError(f"{path} is a damaged .safetensors file: {exc}") from None


def _torch_file(path: Path) -> dict[str, np.ndarray]:
    try:
        from semseg.engines.torch.gluon import read_state_file
    except ImportError:
        raise WeightsError(
            f"{path} is a PyTorch .pth file, which needs PyTorch to read (the torch image has it); convert it to "
            ".safetensors, or import it in the torch image"
        ) from None
    try:
        return read_state_file(path)
    except ValueError as exc:
        raise WeightsError(f"{path} {exc}") from None


def as_gluon(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """GluonCV's names of a timm (or torchvision-style) state: BatchNorm's weight/bias as gamma/beta, without
    num_batches_tracked and a DataParallel `module.` prefix. GluonCV's own names pass unchanged; a DINOv2 state
    gets the reference implementation's names (semseg.store.dinov2_names)."""
    arrays = {name.removeprefix("module."): array for name, array in arrays.items()}
    if is_dinov2(arrays):
        return reference_names(arrays)
    norms = {name.rsplit(".", 1)[0] for name in arrays if name.endswith(".running_mean")}
    renamed = {"weight": "gamma", "bias": "beta"}
    found = {}
    for name, array in arrays.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        if prefix in norms and leaf in renamed:
            leaf = renamed[leaf]
        found[f"{prefix}.{leaf}" if prefix else leaf] = array
    return found


def backbone_of(arrays: dict[str, np.ndarray]) -> str:
    """Which backbone the arrays are: a ResNet by the blocks of its third stage, a DINOv2 ViT by its width."""
    if "pos_embed" in arrays:
        width = arrays["pos_embed"].shape[-1]
        for backbone, (dim, _) in VIT_WIDTHS.items():
            if width == dim:
                return backbone
        known = ", ".join(f"{b} ({dim})" for b, (dim, _) in VIT_WIDTHS.items())
        raise WeightsError(f"its tokens are {width} wide, which is no DINOv2 backbone of ours: {known}")
    blocks = {name.split(".")[1] for name in arrays if name.startswith("layer3.") and name.count(".") >= 2}
    for backbone, stages in BACKBONE_BLOCKS.items():
        if len(blocks) == stages[2]:
            return backbone
    known = ", ".join(f"{b} ({stages[2]})" for b, stages in BACKBONE_BLOCKS.items())
    raise WeightsError(f"its third stage has {len(blocks)} blocks, which is no backbone of ours: {known}")


def checked(arrays: dict[str, np.ndarray], backbone: str) -> dict[str, np.ndarray]:
    """The backbone's arrays of `arrays` as float32 (the classifier `fc` kept where it is there); WeightsError naming
    every kind of problem: missing or mis-shaped arrays, no floating-point values, values that are not finite,
    running variances that are not positive."""
    expected = vit_shapes(backbone) if is_vit(backbone) else backbone_shapes(backbone)
    problems = []
    missing = [name for name in expected if name not in arrays]
    if missing:
        problems.append(f"{len(missing)} of its {len(expected)} arrays are missing ({_some(missing)})")
    present = [name for name in expected if name in arrays]
    wrong = [f"{n} {tuple(arrays[n].shape)}, not {expected[n]}" for n in present if arrays[n].shape != expected[n]]
    if wrong:
        problems.append(f"{len(wrong)} have the wrong shape ({_some(wrong)})")
    classifier = {} if is_vit(backbone) else {n: a for n, a in arrays.items() if n.startswith("fc.")}
    kept = {name: arrays[name] for name in present} | classifier
    not_float = [name for name, array in kept.items() if not np.issubdtype(array.dtype, np.floating)]
    if not_float:
        problems.append(f"{len(not_float)} hold no floating-point numbers ({_some(not_float)})")
    floats = {name: np.asarray(array, np.float32) for name, array in kept.items() if name not in not_float}
    infinite = [name for name, array in floats.items() if not np.isfinite(array).all()]
    if infinite:
        problems.append(f"{len(infinite)} hold NaN or infinite values ({_some(infinite)})")
    variances = [n for n, a in floats.items() if n.endswith(".running_var") and n not in infinite and (a <= 0).any()]
    if variances:
        problems.append(f"{len(variances)} running variances are not positive ({_some(variances)})")
    if problems:
        raise WeightsError(f"these are not the {backbone} backbone's weights: " + "; ".join(problems))
    return floats


def _some(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")
