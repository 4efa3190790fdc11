"""Bake GluonCV's ImageNet backbones into $MXNET_HOME/models at image build time.

Runs without importing MXNet (a GPU image has no driver at build time): GluonCV's model-store table and
download address are read from its source with `ast`, the files are checked against its SHA-1 sums, and
land under the exact names GluonCV (and semseg.engines.mxnet.network) look for. `MXNET_GLUON_REPO` overrides the
address, as it does for GluonCV itself.

    python prefetch_weights.py [MODEL ...]      (default: resnet50_v1s resnet101_v1s)
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import os
import sys
import urllib.request
import zipfile
from pathlib import Path

MODELS = ("resnet50_v1s", "resnet101_v1s")


def model_store_source() -> str:
    spec = importlib.util.find_spec("gluoncv")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gluoncv is not installed")
    return (Path(next(iter(spec.submodule_search_locations))) / "model_zoo" / "model_store.py").read_text()


def parse_model_store(source: str) -> tuple[dict[str, str], str]:
    """(model name -> SHA-1, repository URL) from GluonCV's model_store.py."""
    sha1: dict[str, str] = {}
    repo = ""
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign) or not isinstance(node.targets[0], ast.Name):
            continue
        name = node.targets[0].id
        if name == "_model_sha1" and isinstance(node.value, ast.DictComp):
            pairs = ast.literal_eval(node.value.generators[0].iter)
            sha1 = {model: checksum for checksum, model in pairs}
        elif name == "apache_repo_url":
            repo = ast.literal_eval(node.value)
    if not sha1 or not repo:
        raise SystemExit("could not read GluonCV's model store table")
    return sha1, repo


def fetch(model: str, sha1: dict[str, str], repo: str, root: Path) -> Path:
    file_name = f"{model}-{sha1[model][:8]}"
    target = root / f"{file_name}.params"
    if target.exists() and hashlib.sha1(target.read_bytes()).hexdigest() == sha1[model]:
        return target
    repo = os.environ.get("MXNET_GLUON_REPO", repo).rstrip("/") + "/"
    with urllib.request.urlopen(f"{repo}gluon/models/{file_name}.zip", timeout=300) as response:
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    data = archive.read(f"{file_name}.params")
    if hashlib.sha1(data).hexdigest() != sha1[model]:
        raise SystemExit(f"{file_name}.params: SHA-1 mismatch")
    root.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def main(models: list[str]) -> None:
    sha1, repo = parse_model_store(model_store_source())
    root = Path(os.environ.get("MXNET_HOME", "~/.mxnet")).expanduser() / "models"
    for model in models or MODELS:
        print(f"{model}: {fetch(model, sha1, repo, root)}")


if __name__ == "__main__":
    main(sys.argv[1:])
