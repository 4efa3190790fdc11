"""What `semseg-prepare` prints at the end: what a job needs (num_classes, num_training_samples), each class's
share of the labelled pixels and the ignored share, the `aws s3 sync` lines and the channels for SDK v2's
`Estimator.fit` and SDK v3's `ModelTrainer`; and, with an S3 prefix, the augmented manifests that Pipe mode streams
(`source-ref` and `class-ref`: the image, then its mask)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semseg.data.labels import IGNORE

CHANNELS = ("train", "train_annotation", "validation", "validation_annotation")
LABEL_ATTRIBUTE = "class-ref"


def summary(out: Path, classes: Sequence[str], counts: np.ndarray, samples: dict[str, int], prefix: str) -> str:
    """The text printed at the end (`prefix`: the S3 prefix the channels go to, or a placeholder)."""
    labelled = counts[: len(classes)]
    total, ignored = int(counts.sum()), int(counts[IGNORE])
    width = max(len(name) for name in classes)
    lines = [
        f"Wrote {out}: train {samples.get('train', 0)} and validation {samples.get('validation', 0)} image/mask pairs",
        "",
        f"Hyperparameters: num_classes={len(classes)} num_training_samples={samples.get('train', 0)}",
        "Classes (share of the labelled pixels):",
        *(
            f"  {index:3d} {name:<{width}} {100 * labelled[index] / max(labelled.sum(), 1):7.3f}%"
            for index, name in enumerate(classes)
        ),
        f"Ignored (255): {100 * ignored / max(total, 1):.3f}% of all pixels",
        "",
        "Upload:",
        *(f"  aws s3 sync {out / channel} {prefix}/{channel}/" for channel in CHANNELS),
        "",
        "SDK v2: estimator.fit(" + json.dumps({c: f"{prefix}/{c}/" for c in CHANNELS}) + ")",
        "SDK v3: ModelTrainer(..., input_data_config=["
        + ", ".join(f'InputData(channel_name="{c}", data_source="{prefix}/{c}/")' for c in CHANNELS)
        + "])",
    ]
    return "\n".join(lines)


def write_manifests(out: Path, prefix: str) -> list[Path]:
    """OUT/<split>.manifest for Pipe mode: one JSON line per pair, the S3 addresses the sync lines upload to."""
    written = []
    for split in ("train", "validation"):
        lines = [
            json.dumps({"source-ref": f"{prefix}/{split}/{image.relative_to(out / split).as_posix()}",
                        LABEL_ATTRIBUTE: f"{prefix}/{split}_annotation/"
                        f"{image.relative_to(out / split).with_suffix('.png').as_posix()}"})
            for image in sorted((out / split).rglob("*.jpg"))
        ]  # fmt: skip
        path = out / f"{split}.manifest"
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written


def pipe_mode_note(manifests: list[Path]) -> str:
    return (
        f"Pipe mode: {', '.join(str(p) for p in manifests)} (upload them too); each channel: S3DataType "
        f'AugmentedManifestFile, AttributeNames ["source-ref", "{LABEL_ATTRIBUTE}"], RecordWrapperType RecordIO, '
        "InputMode Pipe (docs/pipe-mode.md)"
    )
