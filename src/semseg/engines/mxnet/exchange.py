"""What the hosts of an MXNet job exchange through the parameter server's kvstore
(semseg.engines.mxnet.parameter_server), besides the gradients that gluon.Trainer pushes and pulls every step
(update_on_kvstore=False: the servers sum, every host applies the same optimizer to the same sum, so the weights
stay equal and each host's optimizer state is its own checkpointable copy): every iteration the batch's weighted
count of labelled pixels and a stop flag (so that a signal on any host stops all of them at the same iteration),
every epoch the validation confusion counts, and the agreements of semseg.distributed.agree. Counts travel as four
12-bit digits in float32, exact up to 2**48 for up to 4096 hosts (the kvstore keeps float32; float64 lost the low
bits).
"""

from __future__ import annotations

from typing import Any

import mxnet as mx
import numpy as np

from semseg.distributed.agree import Agreement
from semseg.engines.mxnet.parameter_server import ParameterServer

# Above any parameter index of gluon.Trainer (a few hundred), and small: ps-lite places int key k on server
# (k * 9973) % servers in 32-bit arithmetic, so a key of a million overflowed into another key's slot.
_FIRST_KEY = 100_000
_DIGIT_BITS = 12
_DIGITS = 4


class Exchange(Agreement):
    """Sums over the hosts through `server`'s kvstore; every host calls them alike, in the same order."""

    def __init__(self, server: ParameterServer) -> None:
        self.server = server
        self._keys: dict[str, int] = {}

    def allreduce(self, name: str, values: np.ndarray) -> np.ndarray:
        """The float32 sum of `values` over the hosts."""
        kv = self.server.kv
        array = mx.nd.array(values, dtype="float32")
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = _FIRST_KEY + len(self._keys)
            kv.init(key, mx.nd.zeros(array.shape))
        kv.push(key, array)
        kv.pull(key, out=array)
        return array.asnumpy()

    def sum_counts(self, name: str, counts: np.ndarray) -> np.ndarray:
        """The exact int64 sum of non-negative integer `counts` over the hosts."""
        return from_digits(self.allreduce(name, to_digits(counts)))

    def drain(self) -> None:
        """Before hosts stop early: every host's exchanges of the last step complete."""
        self.server.drain()

    @property
    def parts(self) -> int:
        return self.server.cluster.size

    @property
    def part(self) -> int:
        return self.server.cluster.rank

    def part_name(self, part: int) -> str:
        return self.server.cluster.hosts[part]


def to_digits(counts: np.ndarray) -> np.ndarray:
    """Non-negative integers below 2**48 as float32 digits (4, *shape) of 12 bits: sums of up to 4096 of
    them stay exact in float32."""
    counts = counts.astype(np.int64)
    mask = (1 << _DIGIT_BITS) - 1
    return np.stack([(counts >> (_DIGIT_BITS * i)) & mask for i in range(_DIGITS)]).astype(np.float32)


def from_digits(digits: np.ndarray) -> np.ndarray:
    """The int64 numbers of (summed) `to_digits` digits."""
    whole = np.rint(digits).astype(np.int64)
    return sum((whole[i] << (_DIGIT_BITS * i) for i in range(_DIGITS)), np.zeros(whole.shape[1:], np.int64))


def broadcast_parameters(trainer: Any) -> None:
    """Every host joins the kvstore's broadcast of the initial weights (from ps-lite's worker 0) here, at
    the same point. An inference pass on the CPU may have left a weight in MKL-DNN's own layout, which the
    kvstore cannot send (its push fails and the server then crashes with "init <key> first"): each weight is
    first copied back into the default layout."""
    for param in trainer._params:
        if not param._deferred_init:
            param.set_data(param.data().copy())
    trainer._init_kvstore()
    trainer._init_params()
