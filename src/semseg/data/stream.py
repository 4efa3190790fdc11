"""Pipe mode: batches streamed from SageMaker's per-epoch FIFOs of an augmented manifest.

SageMaker makes FIFO `<channel>_<n>` for the n-th pass over a Pipe-mode channel (n counts from 0 in every
container, also after a checkpoint restart) and writes the manifest's attributes as RecordIO records:
image, mask, image, mask, ... A reader thread reads the FIFO, pairs the records and checks each pair's
headers (a bad stream fails at its record, naming it); the consumer shuffles through a bounded buffer and
hands batches of encoded pairs to the engine's DataLoader, whose workers decode and augment them exactly as
in File mode. Nothing holds more than the shuffle buffer plus the DataLoader's prefetch of the channel.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from semseg.data.channels import MASK_MODES
from semseg.data.dataset import decode_image, prepare, read_mask
from semseg.data.fifo import Fifo, FifoStopped
from semseg.data.labels import LabelMap
from semseg.data.transforms import Transform
from semseg.errors import ClientError
from semseg.recordio import FramingError, read_records

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_SHUFFLE_BUFFER = 256  # pairs; ~256 x the encoded size of a pair in memory
_QUEUE_PAIRS = 32  # read ahead of the consumer

StreamKey = tuple[bytes, bytes, int, int, str]  # image, mask (encoded), sample seed, image's record, FIFO


@dataclass(frozen=True)
class PipeSettings:
    timeout_s: float = DEFAULT_TIMEOUT_S  # SEMSEG_PIPE_TIMEOUT
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER  # SEMSEG_PIPE_SHUFFLE_BUFFER
    should_stop: Callable[[], bool] = field(default=lambda: False)


@dataclass(frozen=True)
class _Pair:
    image: bytes
    mask: bytes
    record: int  # the image's; the mask is the next


@dataclass(frozen=True)
class _End:
    pairs: int


class StreamDataset:
    """Stream keys -> (image uint8 HxWx3, class-id mask uint8 HxW): decoding in the DataLoader's workers."""

    def __init__(self, label_map: LabelMap, transform: Transform) -> None:
        self.label_map = label_map
        self.transform = transform

    def __getitem__(self, key: StreamKey) -> tuple[np.ndarray, np.ndarray]:
        image_bytes, mask_bytes, seed, record, source = key
        image_name, mask_name = f"record {record} of {source}", f"record {record + 1} of {source}"
        image = decode_image(image_bytes, f"Image {image_name}")
        mask = self.label_map.apply(read_mask(io.BytesIO(mask_bytes), mask_name), mask_name)
        return prepare(image, mask, self.transform, seed, image_name, mask_name)


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
    ) -> None:
        self.folder = folder
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
        rng = np.random.default_rng((self.seed, self.epoch))
        buffer_size = self.settings.shuffle_buffer if self.shuffle else 0
        buffer: list[StreamKey] = []
        batch: list[StreamKey] = []
        reader = _Reader(path, self.channel, self.settings)
        try:
            for pair in reader.pairs():
                key = (pair.image, pair.mask, int(rng.integers(0, 2**31 - 1)), pair.record, reader.source)
                if len(buffer) < buffer_size:
                    buffer.append(key)
                    continue
                if buffer:
                    slot = int(rng.integers(len(buffer)))
                    key, buffer[slot] = buffer[slot], key
                batch.append(key)
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []
            if reader.stopped:
                return
            rng.shuffle(buffer)
            for key in buffer:
                batch.append(key)
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []
            if batch and not self.drop_last:
                yield batch
            self._check_count(path, reader.count)
        finally:
            reader.cancel()

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
        self.source = f"channel {channel!r} (FIFO {path})"
        self.count = 0
        self.stopped = False
        self._queue: queue.Queue[_Pair | _End | Exception] = queue.Queue(_QUEUE_PAIRS)
        self._cancelled = threading.Event()
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

    def _put(self, item: _Pair | _End | Exception) -> None:
        while not self._cancelled.is_set():
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
                    self._check(image, record, index)
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

    def _check(self, image: bytes, mask: bytes, index: int) -> None:
        """Header checks of the pair ending at record `index` (the pixels are decoded by the workers)."""
        try:
            with Image.open(io.BytesIO(image)) as img:
                size = img.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise self._error(index - 1, f"is no image (JPEG or PNG) that can be read: {exc}") from None
        try:
            with Image.open(io.BytesIO(mask)) as img:
                mask_format, mode, mask_size = img.format, img.mode, img.size
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise self._error(index, f"is not a single-channel 8-bit PNG mask: {exc}") from None
        if mask_format != "PNG" or mode not in MASK_MODES:
            raise self._error(
                index,
                f"is a {mask_format} image of mode {mode}, not a single-channel 8-bit PNG mask (mode L or P). "
                "Check AttributeNames: the image (source-ref) first, then the mask's -ref attribute",
            )
        if mask_size != size:
            raise self._error(
                index,
                f"is a {mask_size[0]}x{mask_size[1]} mask, but its image (record {index - 1}) is "
                f"{size[0]}x{size[1]}; a mask must have the same width and height as its image",
            )

    def _error(self, index: int, what: str) -> ClientError:
        return ClientError(f"Channel {self.channel!r}, Pipe-mode FIFO {self.path}: record {index} {what}.")
