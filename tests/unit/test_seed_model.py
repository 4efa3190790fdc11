"""Incremental-training archives: safe unpacking and the seed model's configuration."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from semseg.contract import seed_model
from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.model_folder import read_model_folder
from semseg.contract.seed_model import find_seed_model, safe_extract

CONFIG = Config(num_classes=3, num_training_samples=4, crop_size=32)


def add(tar: tarfile.TarFile, name: str, data: bytes = b"x", **kwargs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in kwargs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def archive(path: Path, members: list[tuple[str, bytes, dict[str, object]]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data, kwargs in members:
            add(tar, name, data, **kwargs)
    return path


def seed_files(config: Config) -> list[tuple[str, bytes, dict[str, object]]]:
    return [
        ("hyperparams.json", json.dumps(config.to_hyperparameters()).encode(), {}),
        ("model_best.params", b"weights", {}),
    ]


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("../evil", {}, "unsafe member path"),
        ("/etc/evil", {}, "unsafe member path"),
        ("a/../../evil", {}, "unsafe member path"),
        ("link", {"type": tarfile.SYMTYPE, "linkname": "../../etc/passwd"}, "points out of the archive"),
        ("hard", {"type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, "points out of the archive"),
        ("dev", {"type": tarfile.CHRTYPE}, "special file"),
    ],
)
def test_unsafe_archives_are_refused(tmp_path: Path, name: str, kwargs: dict[str, object], message: str) -> None:
    path = archive(tmp_path / "model.tar.gz", [*seed_files(CONFIG), (name, b"", kwargs)])
    with pytest.raises(ClientError, match=message):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out").exists()


def test_huge_archives_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed_model, "MAX_UNPACKED_BYTES", 1000)
    path = archive(tmp_path / "model.tar.gz", [("model_algo-1", b"0" * 2000, {})])
    with pytest.raises(ClientError, match="unpacks to 2,000 bytes, more than the limit of 1,000"):
        safe_extract(path, tmp_path / "out")


def test_archives_are_checked_member_by_member_before_each_is_inflated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seed_model, "MAX_MEMBERS", 3)
    path = archive(tmp_path / "many.tar.gz", [(f"f{i}", b"x", {}) for i in range(5)])
    with pytest.raises(ClientError, match="more than 3 members"):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists(), "a refused archive leaves nothing"
    monkeypatch.setattr(seed_model, "MAX_MEMBERS", 10_000)
    monkeypatch.setattr(seed_model, "MAX_UNPACKED_BYTES", 1000)
    opened: list[str] = []
    original = tarfile.TarFile.extractfile

    def extractfile(self: tarfile.TarFile, member: tarfile.TarInfo | str) -> object:
        opened.append(member.name if isinstance(member, tarfile.TarInfo) else member)
        return original(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", extractfile)
    path = archive(tmp_path / "bomb.tar.gz", [("small", b"0" * 600, {}), ("bomb", b"0" * 600, {})])
    with pytest.raises(ClientError, match="unpacks to 1,200 bytes"):
        safe_extract(path, tmp_path / "out")
    assert opened == ["small"], "the member over the limit was refused from its header, never inflated"


def test_corrupt_archive_is_a_client_error(tmp_path: Path) -> None:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ClientError, match="cannot be unpacked"):
        safe_extract(path, tmp_path / "out")


def test_links_inside_are_skipped_and_files_extracted(tmp_path: Path) -> None:
    link: dict[str, object] = {"type": tarfile.SYMTYPE, "linkname": "model_best.params"}
    members = [*seed_files(CONFIG), ("alias", b"", link)]
    channel = tmp_path / "channel"
    channel.mkdir()
    archive(channel / "model.tar.gz", members)
    seed = find_seed_model(channel, tmp_path / "work", CONFIG)
    assert seed.weights == tmp_path / "work" / "model_best.params"
    assert seed.weights.read_bytes() == b"weights" and not (tmp_path / "work" / "alias").exists()


@pytest.mark.parametrize(
    ("key", "theirs", "ours"),
    [
        ("backbone", "resnet-101", "resnet-50"),
        ("algorithm", "deeplab", "fcn"),
        ("crop_size", "64", "32"),
        ("num_classes", "5", "3"),
    ],
)
def test_mismatch_names_both_values(tmp_path: Path, key: str, theirs: str, ours: str) -> None:
    seed_hp = {**CONFIG.to_hyperparameters(), key: theirs}
    channel = tmp_path / "channel"
    channel.mkdir()
    (channel / "hyperparams.json").write_text(json.dumps(seed_hp))
    (channel / "model_algo-1").write_bytes(b"w")
    with pytest.raises(ClientError, match=f"{key}={ours} here but {key}={theirs} in the seed model"):
        find_seed_model(channel, tmp_path / "work", CONFIG)


def test_falls_back_to_model_algo_1_and_needs_hyperparams(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    channel.mkdir()
    (channel / "model_algo-1").write_bytes(b"w")
    with pytest.raises(ClientError, match="no hyperparams.json"):
        find_seed_model(channel, tmp_path / "work", CONFIG)
    (channel / "hyperparams.json").write_text(json.dumps(CONFIG.to_hyperparameters()))
    assert find_seed_model(channel, tmp_path / "work", CONFIG).weights.name == "model_algo-1"


def test_a_model_folder_is_read_leniently_and_only_the_network_is_checked(tmp_path: Path) -> None:
    """The managed algorithm's hyperparams.json has keys this image does not know, and JSON numbers and booleans."""
    content = {"num_classes": 3, "algorithm": "psp", "backbone": "resnet-101", "crop_size": 240, "epochs": 10,
               "use_pretrained_model": True, "_kvstore": "device", "learning_rate": 1e-05,
               "some_internal": [1, 2]}  # fmt: skip
    (tmp_path / "hyperparams.json").write_text(json.dumps(content))
    (tmp_path / "model_best.params").write_bytes(b"weights")
    model = read_model_folder(tmp_path, "the test model")
    assert (model.config.num_classes, model.config.algorithm, model.config.backbone) == (3, "psp", "resnet-101")
    assert model.config.crop_size == 240
    for bad, words in (
        ({"algorithm": "unet"}, "algorithm: 'unet' is not one of"),
        ({"num_classes": None}, "no num_classes"),
    ):
        broken = {**content, **bad}
        if bad.get("num_classes", 0) is None:
            del broken["num_classes"]
        (tmp_path / "hyperparams.json").write_text(json.dumps(broken))
        with pytest.raises(ClientError, match=words):
            read_model_folder(tmp_path, "the test model")
