"""The one way files are written (semseg.contract.files): a failed write leaves the previous file and no temporary
one, a full or read-only volume is named as such, and links instead of second copies. The estimates of what a job
writes (semseg.fit.disk)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.files import VolumeError, atomic_write, link_or_copy, write_text
from semseg.fit.disk import WEIGHT_BYTES, check_space, estimate


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "model_best.params"
    write_text(target, "whole")

    def half(tmp: Path) -> None:
        tmp.write_text("half")
        raise ValueError("the framework failed")

    with pytest.raises(ValueError, match="the framework failed"):
        atomic_write(target, half)
    assert target.read_text() == "whole" and sorted(p.name for p in tmp_path.iterdir()) == ["model_best.params"]


@pytest.mark.parametrize(("code", "read_only"), [(errno.ENOSPC, False), (errno.EDQUOT, False), (errno.EROFS, True)])
def test_a_full_or_read_only_volume_is_a_volume_error(tmp_path: Path, code: int, read_only: bool) -> None:
    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"x" * 100)
        raise OSError(code, os.strerror(code))

    with pytest.raises(VolumeError) as info:
        atomic_write(tmp_path / "a.params", fail)
    assert info.value.read_only is read_only and info.value.path == tmp_path / "a.params"
    assert info.value.free > 0 and list(tmp_path.iterdir()) == []


def test_a_link_is_the_same_file_and_replaces_atomically(tmp_path: Path) -> None:
    source = tmp_path / "epoch-0001" / "model.params"
    source.parent.mkdir()
    source.write_bytes(b"weights")
    (tmp_path / "best.params").write_bytes(b"older")
    link_or_copy(source, tmp_path / "best.params")
    assert os.path.samefile(source, tmp_path / "best.params") and (tmp_path / "best.params").read_bytes() == b"weights"


@pytest.mark.parametrize(("optimizer", "momentum", "copies"), [("sgd", 0.9, 2), ("sgd", 0.0, 1), ("adam", 0.9, 3)])
def test_a_checkpoint_holds_the_weights_and_the_optimizer_state(optimizer: str, momentum: float, copies: int) -> None:
    config = Config(num_classes=21, num_training_samples=4, optimizer=optimizer, momentum=momentum)
    writes = estimate(config)
    assert writes.weights == WEIGHT_BYTES[("fcn", "resnet-50")] + 21 * 3_080
    assert writes.checkpoint == copies * writes.weights and writes.model == 3 * writes.weights


def test_the_start_check_passes_where_the_model_fits(tmp_path: Path) -> None:
    check_space(Config(num_classes=3, num_training_samples=4), tmp_path / "model", None)  # the disk has room
    assert (tmp_path / "model").is_dir() and list((tmp_path / "model").iterdir()) == []


def test_the_start_check_names_an_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "model"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(ClientError, match=f"The model folder {blocker} cannot be written"):
        check_space(Config(num_classes=3, num_training_samples=4), blocker, None)
