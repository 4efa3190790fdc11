"""The seeded batch sampler: reproducible batches, reshuffled per epoch, one seed per sample."""

from __future__ import annotations

import numpy as np

from semseg.data.samplers import SeededBatchSampler


def test_sampler_is_reproducible_and_reshuffles_per_epoch() -> None:
    sampler = SeededBatchSampler(10, 3, shuffle=True, drop_last=True, seed=7)
    first = list(sampler)
    assert len(first) == len(sampler) == 3 and all(len(b) == 3 for b in first)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    keep = SeededBatchSampler(10, 3, shuffle=False, drop_last=False, seed=7)
    batches = list(keep)
    assert len(batches) == 4 and [i for b in batches for i, _ in b] == list(range(10))
    assert len({s for b in batches for _, s in b}) == 10
    assert np.all(np.diff([i for b in batches for i, _ in b]) == 1)
