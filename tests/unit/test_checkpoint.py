"""The checkpoint store's write order and repair, on an engine state of plain files (the store is the thing under
test; the engines' own files are tested in tests/functional/test_job_life.py)."""

from __future__ import annotations

import os
from pathlib import Path

from semseg.fit.checkpoint import CheckpointStore
from semseg.fit.early_stopping import EarlyStopping


class FileState:
    """Weights and optimizer state as two small files; `value` is what the network holds."""

    engine = "test"
    files = ("weights.bin", "optimizer.bin")
    best_file = "best.bin"

    def __init__(self, value: bytes) -> None:
        self.value = value

    def save(self, folder: Path) -> None:
        (folder / self.files[0]).write_bytes(self.value)
        (folder / self.files[1]).write_bytes(b"optimizer " + self.value)

    def check(self, folder: Path) -> None:
        pass

    def load(self, folder: Path) -> None:
        self.value = (folder / self.files[0]).read_bytes()


def early() -> EarlyStopping:
    return EarlyStopping(False, 0, 1, 0.0)


def test_the_best_file_is_linked_after_its_epoch_is_final_and_resume_repairs_a_missed_link(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, {"learning_rate": "0.1"})
    store.save(0, FileState(b"epoch 0"), early(), is_best=True)
    store.save(1, FileState(b"epoch 1"), early(), is_best=True)
    assert (tmp_path / "best.bin").read_bytes() == b"epoch 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.bin", "epoch-0001"]
    assert os.path.samefile(tmp_path / "best.bin", tmp_path / "epoch-0001" / "weights.bin")  # no second copy
    (tmp_path / "best.bin").unlink()  # a crash after epoch-0001 was final, before the link: epoch 0's best file
    (tmp_path / "best.bin").write_bytes(b"epoch 0")
    state = FileState(b"")
    resumed = store.restore(state)
    assert resumed is not None and resumed.next_epoch == 2 and state.value == b"epoch 1"
    assert (tmp_path / "best.bin").read_bytes() == b"epoch 1", "repaired from the epoch that was the best"


def test_an_epoch_that_was_not_the_best_leaves_the_best_file_alone(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, {"learning_rate": "0.1"})
    store.save(0, FileState(b"epoch 0"), early(), is_best=True)
    store.save(1, FileState(b"epoch 1"), early(), is_best=False)
    assert store.restore(FileState(b"")) is not None
    assert (tmp_path / "best.bin").read_bytes() == b"epoch 0"


def test_a_host_that_does_not_write_checkpoints_moves_nothing(tmp_path: Path) -> None:
    CheckpointStore(tmp_path, {"learning_rate": "0.1"}).save(0, FileState(b"old"), early(), is_best=True)
    other = CheckpointStore(tmp_path, {"learning_rate": "0.2"})
    assert other.restore(FileState(b""), tidy=False) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.bin", "epoch-0000"]
    assert other.restore(FileState(b"")) is None
    (kept,) = tmp_path.glob("previous-*")
    assert sorted(p.name for p in kept.iterdir()) == ["best.bin", "epoch-0000"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name]
