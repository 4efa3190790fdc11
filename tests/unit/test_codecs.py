"""The server's probability answer, written from the array's bytes: parsed back with protobuf's own Record."""

from __future__ import annotations

import io

import numpy as np
import pytest

from semseg.data.recordio import read_records
from semseg.serving.codecs import BadRequest, encode_probabilities
from semseg.serving.record_pb2 import Record  # type: ignore[attr-defined]


@pytest.mark.parametrize("shape", [(2, 3, 4), (21, 37, 53), (150, 1, 1)])
def test_probabilities_parse_back_with_protobuf(shape: tuple[int, int, int]) -> None:
    probabilities = np.random.default_rng(0).random(shape, dtype=np.float32)
    body = encode_probabilities(probabilities)
    (payload,) = list(read_records(io.BytesIO(body).read))
    record = Record()
    record.ParseFromString(payload)
    target = record.features["target"].float32_tensor
    assert list(target.shape) == list(record.features["shape"].int32_tensor.values) == [1, *shape]
    np.testing.assert_array_equal(np.asarray(target.values, dtype=np.float32).reshape(shape), probabilities)
    assert len(body) < probabilities.nbytes + 100, "the array's bytes and a small header, nothing more"


def test_an_answer_over_a_recordio_record_is_413_saying_to_ask_for_png() -> None:
    too_many = np.zeros((150, 1000, 900), dtype=np.float32)  # 540 MB, never touched: calloc'd pages
    with pytest.raises(BadRequest, match="Ask for Accept: image/png") as info:
        encode_probabilities(too_many)
    assert info.value.status == 413
