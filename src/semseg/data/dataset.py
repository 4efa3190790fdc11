"""Decoding, the data set and the seeded batch sampler: plain Python, read by either engine's DataLoader
(semseg.engines.*.loader), which only needs `len` and indexing of the one and iteration of the other.

Randomness: every sample gets its own seed from the sampler (drawn in the main process from the job's
seed and the epoch), so augmentation is reproducible whatever the number of loader workers, and no two
forked workers repeat each other's random streams.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import cv2
import numpy as np
from PIL import Image

from semseg.contract.errors import ClientError
from semseg.data.channels import Pair
from semseg.data.labels import LabelMap
from semseg.data.transforms import Transform

Key = tuple[int, int]  # (sample index, sample seed)


def read_image(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB. EXIF orientation is ignored, as it is for the mask."""
    return decode_image(np.fromfile(str(path), dtype=np.uint8), f"Image {path}")


def decode_image(data: np.ndarray | bytes, source: str) -> np.ndarray:
    """HxWx3 uint8 RGB from encoded JPEG/PNG bytes; ClientError naming `source` when they do not decode."""
    image = try_decode_image(data)
    if image is None:
        raise ClientError(f"{source} cannot be decoded (truncated or corrupt?). Replace or remove it.")
    return image


def try_decode_image(data: np.ndarray | bytes) -> np.ndarray | None:
    """HxWx3 uint8 RGB from encoded JPEG/PNG bytes, or None when they are no image."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path | IO[bytes], source: str | None = None) -> np.ndarray:
    """HxW uint8 pixel values of a grayscale or palette PNG (palette indices, not colours)."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img, dtype=np.uint8)
    except OSError as exc:
        raise ClientError(f"Annotation {source or path} cannot be decoded ({exc}). Replace or remove it.") from None


def prepare(
    image: np.ndarray, mask: np.ndarray, transform: Transform, seed: int, image_name: str, mask_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """The transformed, contiguous (image, class-id mask) of a decoded pair whose mask is already mapped."""
    if image.shape[:2] != mask.shape:
        raise ClientError(
            f"Annotation {mask_name} is {mask.shape[1]}x{mask.shape[0]} but its decoded image {image_name} "
            f"is {image.shape[1]}x{image.shape[0]}; they must have the same size."
        )
    image, mask = transform(image, mask, np.random.default_rng(seed))
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


class SegmentationDataset:
    """Pairs -> (image uint8 HxWx3, class-id mask uint8 HxW) after the label map and the transform."""

    def __init__(self, pairs: Sequence[Pair], label_map: LabelMap, transform: Transform) -> None:
        self.pairs = list(pairs)
        self.label_map = label_map
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: Key) -> tuple[np.ndarray, np.ndarray]:
        index, seed = key
        pair = self.pairs[index]
        image = read_image(pair.image)
        mask = self.label_map.apply(read_mask(pair.mask), pair.mask)
        return prepare(image, mask, self.transform, seed, str(pair.image), str(pair.mask))


class SeededBatchSampler:
    """Batches of (index, seed). Call `set_epoch` before each pass; same seed + epoch = same batches.

    `shard` = (rank, processes): this process's share of every batch (samples rank, rank + processes, ...),
    for one process per GPU; the batches, their order and the seeds are those of the whole job.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        shard: tuple[int, int] = (0, 1),
        limit: int | None = None,
    ) -> None:
        self.shard = shard
        self.limit = limit  # at most this many batches (hosts with data of different sizes take the same steps)
        self.size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        batches = self.size // self.batch_size if self.drop_last else -(-self.size // self.batch_size)
        return batches if self.limit is None else min(batches, self.limit)

    def __iter__(self) -> Iterator[list[Key]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        seeds = rng.integers(0, 2**31 - 1, size=self.size)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            chunk = order[start : start + self.batch_size][self.shard[0] :: self.shard[1]]
            if len(chunk):
                yield [(int(i), int(seeds[i])) for i in chunk]


class BatchSampler(Protocol):
    """What a DataLoader's batch sampler is to an EpochLoader: batches of keys, re-seeded per epoch."""

    def set_epoch(self, epoch: int) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[list[Any]]: ...


class EpochLoader:
    """A loader whose sampler is re-seeded per epoch: `set_epoch(e)` then iterate."""

    def __init__(self, loader: Iterable[Any], sampler: BatchSampler) -> None:
        self.loader = loader
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)
