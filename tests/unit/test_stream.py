"""The Pipe-mode stream's batches: each pair once per pass, shuffled within a bounded buffer, one FIFO per
pass. Plain files stand in for the FIFOs here (the reader takes either); tests/functional has real FIFOs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semseg.contract.errors import ClientError
from semseg.contract.options import PipeSettings
from semseg.data.recordio import frame
from semseg.data.stream import PipeBatches


def png(value: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, np.uint8), mode).save(buffer, "PNG")
    return buffer.getvalue()


def write_passes(folder: Path, pairs: int, passes: int = 2) -> None:
    for n in range(passes):  # the image's pixel value numbers the pair
        (folder / f"train_{n}").write_bytes(b"".join(frame(png(i)) + frame(png(0)) for i in range(pairs)))


def order(batches: PipeBatches, epoch: int) -> list[int]:
    batches.set_epoch(epoch)
    return [np.asarray(Image.open(io.BytesIO(key[0])))[0, 0] for batch in batches for key in batch]


def batches(folder: Path, buffer: int, *, shuffle: bool = True, drop_last: bool = False) -> PipeBatches:
    return PipeBatches(
        folder, "train", 3, shuffle=shuffle, drop_last=drop_last, seed=7, settings=PipeSettings(5, buffer)
    )


def test_without_a_buffer_the_stream_order_is_kept(tmp_path: Path) -> None:
    write_passes(tmp_path, 10)
    assert order(batches(tmp_path, 0), 0) == list(range(10))
    assert order(batches(tmp_path, 16, shuffle=False), 0) == list(range(10))


def test_the_buffer_shuffles_each_pair_once_and_never_further_ahead_than_its_size(tmp_path: Path) -> None:
    write_passes(tmp_path, 40, passes=3)
    stream = batches(tmp_path, 5)
    first, second = order(stream, 0), order(stream, 1)
    assert sorted(first) == list(range(40)) and sorted(second) == list(range(40))
    assert first != list(range(40)) and first != second, "reshuffled every epoch"
    assert all(position >= pair - 5 for position, pair in enumerate(first)), "memory holds 5 pairs, no more"
    assert order(batches(tmp_path, 5), 0) == first, "same seed and epoch, same order"
    assert stream.passes == 2


def test_drop_last_drops_the_partial_batch_and_a_short_stream_is_an_error(tmp_path: Path) -> None:
    write_passes(tmp_path, 7, passes=1)
    stream = batches(tmp_path, 0, drop_last=True)
    stream.set_epoch(0)
    assert [len(batch) for batch in stream] == [3, 3]
    (tmp_path / "train_1").write_bytes(frame(png(1)) + frame(png(0)))
    with pytest.raises(ClientError, match=r"train_1 gave 1 image/mask pairs; the job needs at least"):
        list(stream)


def test_parts_of_a_replicated_stream_take_every_nth_pair_and_together_all_of_them(tmp_path: Path) -> None:
    write_passes(tmp_path, 10, passes=1)
    taken = []
    for part in range(3):
        stream = PipeBatches(
            tmp_path, "train", 2, shuffle=True, drop_last=False, seed=7, settings=PipeSettings(5, 4), take=(part, 3)
        )
        taken.append(order(stream, 0))
    assert [sorted(pairs) for pairs in taken] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_a_pass_that_ends_early_drains_its_stream_and_the_next_pass_reads_the_next(tmp_path: Path) -> None:
    write_passes(tmp_path, 10)
    stream = batches(tmp_path, 0)
    stream.set_epoch(0)
    first = iter(stream)
    assert len(next(first)) == 3
    stream.drain()  # what AgreedBatches does when another host's stream ended
    del first  # the generator closes
    assert order(stream, 1) == list(range(10)), "pass 1 reads train_1 from its start"
    assert stream.passes == 2
