"""Pipe mode: batches streamed from SageMaker's per-epoch FIFOs of an augmented manifest.

SageMaker makes FIFO `<channel>_<n>` for the n-th pass over a Pipe-mode channel (n counts from 0 in every
container, also after a checkpoint restart) and writes the manifest's attributes as RecordIO records:
image, mask, image, mask, ... A reader thread reads the FIFO and pairs the records (bad framing fails at
its record, naming it); a pair whose image File mode would skip (unreadable, truncated, not JPEG or PNG, under
8 px or over 64 Mpx: from its header, nothing decoded) is skipped and counted by record number. The consumer
shuffles through a bounded buffer and hands batches of encoded pairs to the engine's DataLoader, whose workers
decode, check and augment them as in File mode (a bad mask fails there, naming its record). The main process,
which also drives the GPU, only moves bytes. Nothing holds more than the shuffle buffer plus the DataLoader's
prefetch of the channel.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semseg.contract.errors import ClientError
from semseg.contract.options import PipeSettings
from semseg.data.dataset import prepare
from semseg.data.fifo import Fifo, FifoStopped
from semseg.data.images import BadImage, decode_image, decode_mask, probe
from semseg.data.labels import LabelMap
from semseg.data.recordio import FramingError, read_records
from semseg.data.samplers import batches, epoch_rng, sample_seeds
from semseg.data.transforms import Transform

log = logging.getLogger(__name__)

_QUEUE_PAIRS = 32  # read ahead of the consumer
_SHOWN = 5  # skipped records named in the warning

# image, mask (encoded), sample seed, the image's record index, channel, FIFO
StreamKey = tuple[bytes, bytes, int, int, str, str]


@dataclass(frozen=True)
class _Pair:
    image: bytes
    mask: bytes
    record: int  # the image's; the mask is the next


@dataclass(frozen=True)
class _End:
    pairs: int


def stream_error(channel: str, fifo: str, record: int, what: str) -> ClientError:
    return ClientError(f"Channel {channel!r}, Pipe-mode FIFO {fifo}: record {record} {what}.")


class StreamDataset:
    """Stream keys -> (image uint8 HxWx3, class-id mask uint8 HxW), in the DataLoader's workers: decoding, the
    checks of each pair (naming its records), the label map and the transform."""

    def __init__(self, label_map: LabelMap, transform: Transform) -> None:
        self.label_map = label_map
        self.transform = transform

    def __getitem__(self, key: StreamKey) -> tuple[np.ndarray, np.ndarray]:
        image_bytes, mask_bytes, seed, record, channel, fifo = key
        try:
            image = decode_image(image_bytes)
        except BadImage as exc:
            raise stream_error(channel, fifo, record, f"is no image (JPEG or PNG) that can be used: it {exc}") from None
        mask = _decode_mask(mask_bytes, channel, fifo, record + 1)
        if mask.shape != image.shape[:2]:
            raise stream_error(
                channel, fifo, record + 1,
                f"is a {mask.shape[1]}x{mask.shape[0]} mask, but its image (record {record}) is "
                f"{image.shape[1]}x{image.shape[0]}; a mask must have the same width and height as its image",
            )  # fmt: skip
        source = f"channel {channel!r} (FIFO {fifo})"
        mask_name = f"record {record + 1} of {source}"
        mask = self.label_map.apply(mask, mask_name)
        return prepare(image, mask, self.transform, seed, f"record {record} of {source}", mask_name)


def _decode_mask(data: bytes, channel: str, fifo: str, record: int) -> np.ndarray:
    """HxW uint8 values of a single-channel 8-bit PNG; a stream error naming the record otherwise."""
    try:
        return decode_mask(data)
    except BadImage as exc:
        if exc.kind == "mode":
            raise stream_error(
                channel, fifo, record,
                f"{exc}, not a single-channel 8-bit PNG mask (mode L or P). Check AttributeNames: the image "
                "(source-ref) first, then the mask's -ref attribute",
            ) from None  # fmt: skip
        raise stream_error(channel, fifo, record, f"is not a single-channel 8-bit PNG mask: it {exc}") from None


class PipeBatches:
    """Batches of stream keys, one FIFO per pass: a DataLoader's batch sampler (see EpochLoader)."""

    def __init__(
        self,
        folder: Path,
        channel: str,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        settings: PipeSettings,
        expected: int | None = None,
        take: tuple[int, int] = (0, 1),
    ) -> None:
        self.folder = folder
        self.take = take  # (k, n): every n-th pair from the k-th (a FullyReplicated stream on n hosts)
        self._reader: _Reader | None = None
        self.channel = channel
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.settings = settings
        self.expected = expected  # num_training_samples: warn once when the stream differs
        self.epoch = 0
        self.passes = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """An estimate (a stream's length is known at its end): from `expected`, else 0."""
        size = self.expected or 0
        return size // self.batch_size if self.drop_last else -(-size // self.batch_size)

    def __iter__(self) -> Iterator[list[StreamKey]]:
        path = self.folder / f"{self.channel}_{self.passes}"
        self.passes += 1
        reader = self._reader = _Reader(path, self.channel, self.settings)
        try:
            for batch in batches(self._keys(reader, path), self.batch_size, drop_last=False):
                if len(batch) < self.batch_size and (self.drop_last or reader.stopped):
                    break
                yield batch
            _report_skipped(self.channel, path, reader.skipped)
            if not reader.stopped:
                self._check_count(path, reader.count)
        finally:
            reader.cancel()

    def drain(self) -> None:
        """The pass ends before its stream did (another host's ran out): its FIFO is read to the end, unused, so
        that the next pass gets the next FIFO as SageMaker makes it; nothing more is read after a stop."""
        if self._reader is not None:
            self._reader.drain()

    def _keys(self, reader: _Reader, path: Path) -> Iterator[StreamKey]:
        """The stream's pairs as keys with their sample seeds, shuffled through the buffer when training."""
        rng = epoch_rng(self.seed, self.epoch)
        buffer_size = self.settings.shuffle_buffer if self.shuffle else 0
        buffer: list[StreamKey] = []
        first, every = self.take
        for index, pair in enumerate(reader.pairs()):
            if index % every != first:
                continue
            key = (pair.image, pair.mask, sample_seeds(rng), pair.record, self.channel, str(path))
            if len(buffer) < buffer_size:
                buffer.append(key)
                continue
            if buffer:
                slot = int(rng.integers(len(buffer)))
                key, buffer[slot] = buffer[slot], key
            yield key
        if reader.stopped:
            return
        rng.shuffle(buffer)
        yield from buffer

    def _check_count(self, path: Path, pairs: int) -> None:
        if pairs < (self.batch_size if self.drop_last else 1):
            need = f"at least mini_batch_size={self.batch_size}" if self.drop_last else "at least one"
            raise ClientError(
                f"Channel {self.channel!r}: the Pipe-mode FIFO {path} gave {pairs} image/mask pairs; the job "
                f"needs {need}. Check the augmented manifest, or lower the batch size."
            )
        if self.expected is not None and pairs != self.expected:
            log.warning(
                "num_training_samples=%d but the Pipe-mode channel %r streamed %d pairs in %s; the "
                "learning-rate schedule follows num_training_samples",
                self.expected,
                self.channel,
                pairs,
                path.name,
            )
            self.expected = None


class _Reader:
    """A thread that reads one FIFO into checked pairs, a bounded queue ahead of the consumer."""

    def __init__(self, path: Path, channel: str, settings: PipeSettings) -> None:
        self.path = path
        self.channel = channel
        self.settings = settings
        self.count = 0
        self.stopped = False
        self.skipped: list[tuple[int, str]] = []  # (record, why): images File mode would skip too
        self._queue: queue.Queue[_Pair | _End | Exception] = queue.Queue(_QUEUE_PAIRS)
        self._cancelled = threading.Event()
        self._draining = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pipe-{path.name}", daemon=True)
        self._thread.start()

    def pairs(self) -> Iterator[_Pair]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                self.count = item.pairs
                return
            if isinstance(item, FifoStopped):
                self.stopped = True
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def cancel(self) -> None:
        self._cancelled.set()
        self._thread.join(timeout=5)

    def drain(self) -> None:
        """Read the rest of the FIFO without keeping it (until a stop request, or the FIFO's timeout)."""
        self._draining.set()
        self._thread.join()

    def _put(self, item: _Pair | _End | Exception) -> None:
        while not self._cancelled.is_set() and not self._draining.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _should_stop(self) -> bool:
        return self.settings.should_stop() or self._cancelled.is_set()

    def _run(self) -> None:
        try:
            self._put(_End(self._read()))
        except Exception as exc:  # noqa: BLE001  # handed to the consumer, which raises it
            self._put(exc)

    def _read(self) -> int:
        """Pairs put on the queue, or raises ClientError naming the FIFO and the record."""
        pairs = 0
        image: bytes | None = None
        index = -1
        should_stop = self.settings.should_stop
        with Fifo(
            self.path, self.channel, self.settings.timeout_s, lambda: should_stop() or self._cancelled.is_set()
        ) as fifo:
            try:
                for index, record in enumerate(read_records(fifo.read_exact)):
                    if self._cancelled.is_set():
                        return pairs
                    if image is None:
                        image = record
                        continue
                    problem = _unusable(image)
                    if problem:
                        self.skipped.append((index - 1, problem))
                    else:
                        self._put(_Pair(image, record, index - 1))
                        pairs += 1
                    image = None
            except FramingError as exc:
                raise self._error(index + 1, f"is not a RecordIO record: {exc}") from None
        if image is not None:
            raise self._error(
                index,
                "is an image without its mask: the stream has an odd number of records. Each line of the "
                "augmented manifest must give two attributes in AttributeNames, the image (source-ref) then "
                "the mask (its label's -ref attribute)",
            )
        return pairs

    def _error(self, index: int, what: str) -> ClientError:
        return stream_error(self.channel, str(self.path), index, what)


def _unusable(image: bytes) -> str:
    """Why File mode would skip this image (from its header: nothing is decoded), or ""."""
    try:
        probe(image)
    except BadImage as exc:
        return str(exc)
    return ""


def _report_skipped(channel: str, path: Path, skipped: list[tuple[int, str]]) -> None:
    if skipped:
        shown = "; ".join(f"record {record} {why}" for record, why in skipped[:_SHOWN])
        log.warning(
            "Channel %r, Pipe-mode FIFO %s: skipped %d pair(s) whose image cannot be used (as File mode skips "
            "such files): %s%s", channel, path, len(skipped), shown, "; ..." if len(skipped) > _SHOWN else "",
        )  # fmt: skip
