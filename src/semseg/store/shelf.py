"""The weight store itself ($MXNET_HOME/models): a backbone's checked arrays written as the GluonCV file both
engines load (atomically: a failure leaves nothing), and the manifest beside them that records where each file came
from (source, address, revision, the SHA-256 of the file fetched and of the file written), or that the image was
built without weights. Fetching tries the sources in order and takes the first file that passes every check."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from semseg.contract.files import write_text
from semseg.engines.gluon_files import read_arrays, save_arrays
from semseg.engines.weights import MANIFEST, Backbone, read_manifest
from semseg.store.arrays import WeightsError, as_gluon, backbone_of, checked, read_file
from semseg.store.sources import Fetched, Source, SourceError, file_hash

log = logging.getLogger(__name__)


class FetchError(Exception):
    """No source gave a usable file: the message names every source tried and why each failed."""


def fetch(backbone: Backbone, root: Path, sources: Sequence[Source], timeout: float, sha256: str | None = None) -> Path:
    """The store's file of `backbone`: the one already there when it passes the checks (offline), else from the
    first of `sources` whose file is right (its SHA-256 `sha256` where the builder gives one)."""
    present = root / backbone.file_name
    if present.is_file():
        try:
            checked(as_gluon(read_arrays(present, "The store's file")), backbone.name)
        except Exception as exc:  # noqa: BLE001 - a broken file is fetched again
            log.warning("%s is there but unusable (%s): fetching it again", present, exc)
        else:
            log.info("%s: %s is there already", backbone.name, present)
            return present
    root.mkdir(parents=True, exist_ok=True)
    failures = []
    for source in (source for source in sources if source.carries(backbone)):
        with tempfile.TemporaryDirectory(prefix=".semseg-weights-", dir=root) as work:
            try:
                fetched = source.get(backbone, Path(work), timeout)
                found = file_hash(fetched.path, "sha256")
                if sha256 and found != sha256.lower():
                    raise SourceError(f"its SHA-256 {found} is not the one given, {sha256}")
                kind, arrays = read_file(fetched.path)
                arrays = checked(as_gluon(arrays), backbone.name)
            except (SourceError, WeightsError) as exc:
                where = source.address(backbone)
                failures.append(f"  {source.name}{f' ({where})' if where else ''}: {exc}")
                log.warning("%s: source %s failed: %s", backbone.name, source.name, exc)
                continue
            origin = _origin(source.name, fetched, kind, found)
            return put(arrays, backbone, root, origin)
    raise FetchError(
        f"No source gave the {'DINOv2' if backbone.vit else 'ImageNet'} weights of {backbone.name} "
        f"({backbone.file_name}):\n"
        + "\n".join(failures or ["  no source was given"])
        + "\nGive a source that answers (--sources, SEMSEG_WEIGHTS_URL, MXNET_GLUON_REPO, HF_ENDPOINT, "
        "SEMSEG_DINOV2_URL), or build "
        "with PREFETCH_WEIGHTS=0 and bring the files with `semseg-weights import` (docs/training.md)."
    )


def import_file(path: Path, backbone: str | None, root: Path) -> Path:
    """A weight file the user brings into the store (the backbone read from the file, and checked against
    `backbone` where given); WeightsError naming the problem, and nothing written."""
    kind, arrays = read_file(path)
    arrays = as_gluon(arrays)
    try:
        found = backbone_of(arrays)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    if backbone is not None and found != backbone:
        raise WeightsError(f"{path} holds the {found} backbone, not {backbone}: check --backbone or the file")
    try:
        arrays = checked(arrays, found)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    origin = {
        "source": "import",
        "address": str(path.resolve()),
        "format": kind,
        "fetched_sha256": file_hash(path, "sha256"),
    }
    return put(arrays, Backbone(found), root, origin)


def put(arrays: Mapping[str, np.ndarray], backbone: Backbone, root: Path, origin: Mapping[str, str]) -> Path:
    """`arrays` as the store's GluonCV file of `backbone`, and its line in the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / backbone.file_name
    save_arrays(arrays, path)
    entry = {"backbone": backbone.name, **origin, "sha256": file_hash(path, "sha256"), "bytes": path.stat().st_size}
    entry["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest = read_manifest(root) or {}
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    write_manifest(root, {"files": {**files, path.name: entry}})  # type: ignore[dict-item]
    log.info("%s: %s from %s (%s)", backbone.name, path, origin["source"], origin["address"])
    return path


def mark_empty(root: Path) -> None:
    """An image built without ImageNet weights (PREFETCH_WEIGHTS=0): a manifest that says so (jobs read it)."""
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root, {"files": {}, "built_without_weights": True})


def write_manifest(root: Path, content: Mapping[str, object]) -> None:
    write_text(root / MANIFEST, json.dumps(content, indent=2, sort_keys=True) + "\n")


def _origin(source: str, fetched: Fetched, kind: str, sha256: str) -> dict[str, str]:
    return {"source": source, "address": fetched.address, "revision": fetched.revision, "format": kind,
            "fetched_sha256": sha256}  # fmt: skip
