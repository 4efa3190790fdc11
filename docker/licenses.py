"""Writes THIRD_PARTY_LICENSES: every Python distribution installed in this environment (name, version, licence,
and the text of its licence files), the terms of the pretrained weights in the store, and where the Debian
packages' terms are. Run by the Dockerfile in each image; it fails (exit 1, naming them) where a distribution's
licence cannot be told or forbids commercial use, so no image is built with one.

    python docker/licenses.py OUT [--store DIR]

The licence is read from the distribution's metadata: `License-Expression` (PEP 639), else a short `License`
field, else its `License ::` classifiers, else the first lines of its licence files; KNOWN holds those whose
metadata says nothing usable (checked by hand against their licence files). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib import metadata
from pathlib import Path

# Distributions whose metadata names no licence (read from their licence files or their project's pages).
KNOWN = {
    "mxnet": "Apache-2.0",
    "mxnet-cu117": "Apache-2.0",
    "gluoncv": "Apache-2.0",
    "onnx": "Apache-2.0",
    "openvino": "Apache-2.0",
    "openvino-telemetry": "Apache-2.0",
    "triton": "MIT",
    "semseg": "Apache-2.0",  # this project (an editable install's metadata may predate its licence field)
    "tensorboard-data-server": "Apache-2.0",
}
NVIDIA = "NVIDIA Software License Agreement (proprietary; redistribution as part of an application allowed)"
FORBIDDEN = re.compile(r"non[- ]?commercial|\bNC\b|CC-BY-NC|research only|evaluation only", re.IGNORECASE)
KNOWN_WORDS = re.compile(
    r"Apache|MIT|BSD|ISC|PSF|Python Software Foundation|Mozilla|MPL|LGPL|GPL|Zlib|HPND|Unlicense|CC0|"
    r"Public Domain|NVIDIA|Historical Permission|3-Clause|2-Clause|Artistic|Boost|BSL-1.0|OpenSSL|Intel",
    re.IGNORECASE,
)
WEIGHT_TERMS = {
    "gluoncv": "Apache-2.0 (GluonCV's model zoo)",
    "huggingface": "Apache-2.0 (the Hub's model card: timm's copies of GluonCV's ResNets; facebook/dinov2-*)",
    "authors": "Apache-2.0 (DINOv2's code and weights, since 2023-08-31)",
    "url": "the terms of the file the builder gave (SEMSEG_WEIGHTS_URL)",
    "import": "the terms of the file imported with semseg-weights import",
}


def licence(dist: metadata.Distribution) -> str:
    """The distribution's licence in a few words ("" where its metadata does not say)."""
    name = (dist.metadata["Name"] or "").lower()
    if name in KNOWN:
        return KNOWN[name]
    if name.startswith("nvidia-"):
        return NVIDIA
    for field in ("License-Expression", "License"):
        value = next(iter(dist.metadata.get_all(field) or []), "").strip()
        if value and value.upper() != "UNKNOWN" and len(value) <= 100 and "\n" not in value:
            return value
    found = dist.metadata.get_all("Classifier") or []
    classifiers = [c.split("::")[-1].strip() for c in found if c.startswith("License ::")]
    if classifiers:
        return ", ".join(classifiers)
    for text in licence_texts(dist).values():
        head = " ".join(text.split()[:40])
        match = KNOWN_WORDS.search(head)
        if match:
            return f"{head[:100]}..."
    return ""


def licence_texts(dist: metadata.Distribution) -> dict[str, str]:
    """Its licence, copying and notice files, by their path in the distribution."""
    texts = {}
    for file in dist.files or []:
        if re.search(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", file.name, re.IGNORECASE) and file.suffix != ".py":
            try:
                texts[str(file)] = Path(str(dist.locate_file(file))).read_text(errors="replace")
            except OSError:
                continue
    return texts


def weights(store: Path) -> list[str]:
    try:
        files = json.loads((store / "semseg-weights.json").read_text()).get("files") or {}
    except (OSError, ValueError):
        return [f"No pretrained weights in {store}."]
    if not files:
        return [f"No pretrained weights in {store} (built without them)."]
    lines = []
    for name, entry in sorted(files.items()):
        terms = WEIGHT_TERMS.get(entry.get("source", ""), "unknown")
        lines.append(f"{store / name}: {entry.get('backbone')} from {entry.get('address')}; terms: {terms}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--store", type=Path, default=Path("/opt/mxnet/models"))
    args = parser.parse_args()
    unique = {(d.metadata["Name"] or "").lower(): d for d in metadata.distributions()}  # each name once
    dists = [unique[name] for name in sorted(unique)]
    table, texts, problems = [], [], []
    for dist in dists:
        name, version = dist.metadata["Name"], dist.version
        found = licence(dist)
        if not found:
            problems.append(f"{name} {version}: no licence in its metadata or files (read them, then add it to KNOWN)")
        elif FORBIDDEN.search(found):
            problems.append(f"{name} {version}: its licence forbids commercial use ({found})")
        table.append(f"{name}=={version}\t{found}")
        for path, text in licence_texts(dist).items():
            texts.append(f"{'=' * 100}\n{name} {version}: {path}\n{'=' * 100}\n{text.rstrip()}\n")
    if problems:
        print("THIRD_PARTY_LICENSES: " + "; ".join(problems), file=sys.stderr)
        return 1
    header = [
        "Third-party software and weights in this image, generated when it was built (docker/licenses.py).",
        "",
        f"Python distributions in {sys.prefix} ({len(table)}): name==version<TAB>licence",
        *table,
        "",
        "Pretrained weights:",
        *weights(args.store),
        "",
        "Debian packages: each package's terms are in /usr/share/doc/<package>/copyright.",
        "",
        "The licence files of the distributions follow.",
        "",
    ]
    args.out.write_text("\n".join(header) + "\n".join(texts))
    print(f"THIRD_PARTY_LICENSES: {len(table)} distributions, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
