"""Incremental training: the `model` channel holds a previous job's model.tar.gz (or its files).

The archive is unpacked by hand: only regular files and folders are written, and a member with an
absolute path or `..`, a link that points out of the folder, or an archive that unpacks to more than
MAX_UNPACKED_BYTES is refused with a ClientError. The seed's hyperparams.json must agree with this job on
the settings that shape the network.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tarfile
from pathlib import Path

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.files import HYPERPARAMS
from semseg.contract.model_folder import ModelFolder, read_model_folder

log = logging.getLogger(__name__)

MAX_UNPACKED_BYTES = 8 * 1024**3
MAX_MEMBERS = 10_000
MUST_MATCH = ("backbone", "algorithm", "crop_size", "num_classes")
WHAT = "channel 'model'"


def find_seed_model(channel: Path, work_dir: Path, config: Config) -> ModelFolder:
    """The model to start from, checked against `config`; archives are unpacked into `work_dir`."""
    archives = sorted(p for p in channel.rglob("*") if p.is_file() and p.name.endswith((".tar.gz", ".tgz", ".tar")))
    folder = channel
    if archives:
        if len(archives) > 1:
            log.warning("Channel model has %d archives; using %s", len(archives), archives[0])
        folder = work_dir
        shutil.rmtree(folder, ignore_errors=True)
        safe_extract(archives[0], folder)
    hp_files = sorted(folder.rglob(HYPERPARAMS))
    if not hp_files:
        raise ClientError(
            f"Channel 'model' has no {HYPERPARAMS} (looked in {channel}). It must hold the model.tar.gz of a "
            "previous training job of this algorithm."
        )
    seed = read_model_folder(hp_files[0].parent, WHAT)
    _check_matches(seed, config)
    log.info("Incremental training: starting from %s", seed.weights)
    return seed


def _check_matches(seed: ModelFolder, config: Config) -> None:
    ours, theirs = config.to_hyperparameters(), seed.config.to_hyperparameters()
    mismatched = [
        f"{key}={ours[key]} here but {key}={theirs[key]} in the seed model"
        for key in MUST_MATCH
        if ours[key] != theirs[key]
    ]
    if mismatched:
        raise ClientError(
            "Incremental training needs the same network as the seed model: " + "; ".join(mismatched) + ". "
            "Set these hyperparameters to the seed model's values."
        )


def safe_extract(archive: Path, destination: Path) -> None:
    """Unpack regular files and folders of a tar archive into `destination`; refuse anything unsafe.

    Checked while reading, member by member, before each is inflated: the count, each path and link, and the sum
    of the sizes the headers declare, so a bomb is refused before it fills the disk. Unpacked into a partial
    folder renamed onto `destination` at the end: a refused archive leaves nothing.
    """
    partial = destination.with_name(f".{destination.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            partial.mkdir(parents=True)
            total = 0
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise ClientError(
                        f"Model archive {archive} has more than {MAX_MEMBERS} members; a model has a handful: refused"
                    )
                name = _check_member(archive, member)
                total += member.size if member.isfile() else 0
                if total > MAX_UNPACKED_BYTES:
                    raise ClientError(
                        f"Model archive {archive} unpacks to {total:,} bytes, more than the limit of "
                        f"{MAX_UNPACKED_BYTES:,}: refused"
                    )
                _extract(tar, member, partial / name)
        os.replace(partial, destination)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ClientError(
            f"Model archive {archive} cannot be unpacked ({exc}). Provide an intact model.tar.gz."
        ) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
    elif member.isfile():
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is not None:
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)


def _clean_name(archive: Path, name: str) -> str:
    normal = posixpath.normpath(name)
    if name.startswith("/") or normal == ".." or normal.startswith("../"):
        raise ClientError(f"Model archive {archive} has an unsafe member path {name!r}: refused")
    return normal


def _check_member(archive: Path, member: tarfile.TarInfo) -> str:
    """The member's clean path; ClientError for an unsafe path, a link out of the archive or a special file."""
    name = _clean_name(archive, member.name)
    if member.issym() or member.islnk():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise ClientError(
                f"Model archive {archive} has a link {member.name!r} -> {member.linkname!r} that points out of "
                "the archive: refused"
            )
        log.warning("Model archive %s: skipping link %s", archive, member.name)
    elif not (member.isfile() or member.isdir()):
        raise ClientError(f"Model archive {archive} has a special file {member.name!r}: refused")
    return name
