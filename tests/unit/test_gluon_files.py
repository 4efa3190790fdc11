"""GluonCV parameter files without MXNet (semseg.engines.gluon_files), held equal to MXNet's own `mx.nd.save` and
`mx.nd.load`, byte for byte and array for array; a file that is not one is a ClientError that names it."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from semseg.contract.errors import ClientError
from semseg.engines.gluon_files import parse, read_arrays, save_arrays, serialize

ARRAYS = {
    "conv1.0.weight": np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32),
    "bn1.running_var": np.random.default_rng(1).random(4).astype(np.float32) + 0.5,
    "counts": np.arange(6, dtype=np.int64).reshape(2, 3),
    "half": np.linspace(-1, 1, 5).astype(np.float16),
    "mask": np.array([0, 255, 7], np.uint8),
    "double": np.array([[1e-300, 3.5]], np.float64),
}


def mxnet_file(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    mx.nd.save(str(path), {name: mx.nd.array(array, dtype=array.dtype) for name, array in arrays.items()})
    return path


def test_the_bytes_are_mxnets(tmp_path: Path) -> None:
    assert serialize(ARRAYS) == mxnet_file(tmp_path / "mxnet.params", ARRAYS).read_bytes()


def test_mxnets_files_read_as_mxnet_reads_them(tmp_path: Path) -> None:
    path = mxnet_file(tmp_path / "model.params", ARRAYS)
    ours, theirs = read_arrays(path, "The test file"), mx.nd.load(str(path))
    assert list(ours) == list(theirs)
    for name, array in ours.items():
        assert array.dtype == theirs[name].dtype and array.flags.writeable
        np.testing.assert_array_equal(array, theirs[name].asnumpy())


def test_saved_files_load_in_mxnet_as_float32(tmp_path: Path) -> None:
    save_arrays(ARRAYS, tmp_path / "ours.params")
    loaded = mx.nd.load(str(tmp_path / "ours.params"))
    for name, array in ARRAYS.items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name].asnumpy(), array.astype(np.float32))


def test_symbol_file_prefixes_are_removed(tmp_path: Path) -> None:
    path = mxnet_file(
        tmp_path / "model-0000.params", {"arg:conv.weight": ARRAYS["mask"], "aux:bn.running_var": ARRAYS["half"]}
    )
    assert set(read_arrays(path, "The export")) == {"conv.weight", "bn.running_var"}


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data[:-3], "truncated"),
        (lambda data: b"PK\x03\x04" + data[4:], "not MXNet's list magic"),
        (lambda data: data + b"\x00", "bytes after the names"),
        (lambda data: b"", "truncated"),
    ],
)
def test_a_damaged_file_is_a_client_error_naming_it(tmp_path: Path, damage, words: str) -> None:
    path = tmp_path / "broken.params"
    path.write_bytes(damage(serialize(ARRAYS)))
    with pytest.raises(ClientError, match=rf"The weights \({path}\) is not a GluonCV parameter file: .*{words}"):
        read_arrays(path, "The weights")


def test_a_missing_file_is_a_client_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="cannot be read: No such file"):
        read_arrays(tmp_path / "none.params", "The weights")


def test_a_sparse_array_is_refused() -> None:
    data = bytearray(serialize({"w": ARRAYS["mask"]}))
    data[28:32] = (1).to_bytes(4, "little", signed=True)  # the first array's storage type: row_sparse
    with pytest.raises(ValueError, match="sparse"):
        parse(bytes(data))
