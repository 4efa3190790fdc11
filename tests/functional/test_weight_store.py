"""`semseg-weights` (semseg.store) with no network: a local HTTP server on 127.0.0.1 plays each source (GluonCV's
zip with the right and a wrong SHA-1, timm's safetensors on the Hub, a 404, one too slow to answer), and `fetch`
takes the first file that is right; `import` of a GluonCV .params, a timm .safetensors and a .pth gives the arrays
of the GluonCV file they came from, bit for bit; bad files are refused with nothing written; and jobs on both
engines train from an imported file."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from semseg.engines.gluon_files import read_arrays, serialize
from semseg.engines.weights import MANIFEST, Backbone, read_manifest
from semseg.store.arrays import WeightsError
from semseg.store.cli import main as weights_main
from semseg.store.shelf import FetchError, fetch, import_file
from semseg.store.sources import BuilderURL, GluonCVStore, HuggingFaceHub, file_hash
from tests.helpers import Server
from tests.tiny_mxnet import fake_imagenet_weights

RESNET50 = Backbone("resnet-50")
HUB_PATH = "/timm/resnet50s.gluon_in1k/resolve/main/model.safetensors"


@pytest.fixture(scope="module")
def gluoncv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GluonCV resnet50_v1s file as GluonCV writes it (random weights: the real ones cannot be fetched here)."""
    return fake_imagenet_weights(tmp_path_factory.mktemp("gluoncv"))


@pytest.fixture(scope="module")
def reference(gluoncv: Path) -> dict[str, np.ndarray]:
    return {name: array.asnumpy() for name, array in mx.nd.load(str(gluoncv)).items()}


def timm_state(reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same weights under timm's names: BatchNorm's gamma/beta as weight/bias, with num_batches_tracked."""
    state = {}
    for name, array in reference.items():
        prefix, leaf = name.rsplit(".", 1)
        state[f"{prefix}.{ {'gamma': 'weight', 'beta': 'bias'}.get(leaf, leaf) }"] = array
        if leaf == "running_mean":
            state[f"{prefix}.num_batches_tracked"] = np.array(1000, np.int64)
    return state


@pytest.fixture(scope="module")
def files(gluoncv: Path, reference: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("formats")
    safetensors = folder / "model.safetensors"
    save_file(timm_state(reference), str(safetensors), metadata={"format": "pt"})
    pth = folder / "gluon_resnet50_v1s.pth"
    torch.save({name: torch.from_numpy(array) for name, array in timm_state(reference).items()}, pth)
    return {"params": gluoncv, "safetensors": safetensors, "pth": pth}


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.http.shutdown()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def sources(server: Server, gluoncv: Path) -> list:
    sha1 = {RESNET50.model: file_hash(gluoncv, "sha1")}
    return [
        GluonCVStore(server.url + "/", sha1),
        HuggingFaceHub(server.url),
        BuilderURL(server.url + "/mine"),
    ]


def gluoncv_route(server: Server, gluoncv: Path, data: bytes) -> None:
    stem = f"{RESNET50.model}-{file_hash(gluoncv, 'sha1')[:8]}"
    server.routes[f"/gluon/models/{stem}.zip"] = (200, zipped(f"{stem}.params", data), 0.0)


def assert_stored(store: Path, reference: dict[str, np.ndarray], source: str) -> dict:
    stored = read_arrays(store / RESNET50.file_name, "the stored file")
    for name in [n for n in reference if not n.startswith("fc.")]:
        assert stored[name].dtype == np.float32 and np.array_equal(stored[name], reference[name]), name
    entry = read_manifest(store)["files"][RESNET50.file_name]  # type: ignore[index]
    assert entry["source"] == source and entry["sha256"] == file_hash(store / RESNET50.file_name, "sha256")
    return entry


def test_fetch_takes_gluoncvs_file_when_its_sha1_is_right(server, gluoncv, reference, tmp_path: Path) -> None:
    gluoncv_route(server, gluoncv, gluoncv.read_bytes())
    fetch(RESNET50, tmp_path / "store", sources(server, gluoncv), timeout=5)
    entry = assert_stored(tmp_path / "store", reference, "gluoncv")
    assert entry["revision"] == f"sha1:{file_hash(gluoncv, 'sha1')}" and entry["address"].endswith(".zip")


def test_a_wrong_sha1_falls_back_to_timms_copy_on_the_hub(server, gluoncv, reference, files, tmp_path: Path) -> None:
    damaged = bytearray(gluoncv.read_bytes())
    damaged[-100] ^= 1
    gluoncv_route(server, gluoncv, bytes(damaged))
    server.routes[HUB_PATH] = (200, files["safetensors"].read_bytes(), 0.0)
    fetch(RESNET50, tmp_path / "store", sources(server, gluoncv), timeout=5)
    entry = assert_stored(tmp_path / "store", reference, "huggingface")
    assert entry["revision"] == "0123abcd" and entry["format"] == "safetensors"


def test_a_404_and_a_slow_source_fall_back_to_the_builders_url(server, gluoncv, reference, tmp_path: Path) -> None:
    server.routes[HUB_PATH] = (200, b"late", 3.0)
    server.routes[f"/mine/{RESNET50.file_name}"] = (200, gluoncv.read_bytes(), 0.0)
    fetch(RESNET50, tmp_path / "store", sources(server, gluoncv), timeout=1)
    entry = assert_stored(tmp_path / "store", reference, "url")
    assert entry["revision"] == f"etag-{gluoncv.stat().st_size}"


def test_no_source_is_an_error_naming_each_and_nothing_is_written(server, gluoncv, tmp_path: Path) -> None:
    damaged = bytearray(gluoncv.read_bytes())
    damaged[-100] ^= 1
    gluoncv_route(server, gluoncv, bytes(damaged))
    server.routes[HUB_PATH] = (200, b"late", 3.0)
    with pytest.raises(FetchError) as failed:
        fetch(RESNET50, tmp_path / "store", sources(server, gluoncv), timeout=1)
    lines = str(failed.value).splitlines()
    assert lines[0] == f"No source gave the ImageNet weights of resnet-50 ({RESNET50.file_name}):"
    assert lines[1].startswith("  gluoncv (") and "is not GluonCV's" in lines[1]
    assert lines[2].startswith("  huggingface (") and lines[2].endswith("no answer within 1 s")
    assert lines[3].startswith("  url (") and lines[3].endswith("HTTP 404 Not Found")
    assert list((tmp_path / "store").iterdir()) == []


def test_the_builders_sha256_is_checked(server, gluoncv, reference, tmp_path: Path) -> None:
    server.routes[f"/mine/{RESNET50.file_name}"] = (200, gluoncv.read_bytes(), 0.0)
    only_url = sources(server, gluoncv)[2:]
    with pytest.raises(FetchError, match="its SHA-256 [0-9a-f]{64} is not the one given, " + "0" * 64):
        fetch(RESNET50, tmp_path / "store", only_url, timeout=5, sha256="0" * 64)
    fetch(RESNET50, tmp_path / "store", only_url, timeout=5, sha256=file_hash(gluoncv, "sha256"))
    assert_stored(tmp_path / "store", reference, "url")


def test_a_file_already_in_the_store_needs_no_source(server, gluoncv, tmp_path: Path) -> None:
    store = tmp_path / "store"
    import_file(gluoncv, "resnet-50", store)
    before = (store / RESNET50.file_name).stat().st_mtime_ns
    assert fetch(RESNET50, store, sources(server, gluoncv), timeout=1) == store / RESNET50.file_name  # all 404
    assert (store / RESNET50.file_name).stat().st_mtime_ns == before


@pytest.mark.parametrize("kind", ["params", "safetensors", "pth"])
def test_import_of_each_format_gives_gluoncvs_arrays(kind: str, files, reference, tmp_path: Path) -> None:
    path = import_file(files[kind], None, tmp_path / "store")  # the backbone is read from the file
    assert path == tmp_path / "store" / RESNET50.file_name
    entry = assert_stored(tmp_path / "store", reference, "import")
    assert entry["address"] == str(files[kind].resolve()) and entry["fetched_sha256"] == file_hash(
        files[kind], "sha256"
    )


def bad_files(reference: dict[str, np.ndarray], folder: Path) -> dict[str, tuple[Path, str]]:
    good = serialize(reference)
    truncated, unknown, infinite, negative = (
        folder / name for name in ("cut.params", "x.bin", "nan.params", "var.params")
    )
    truncated.write_bytes(good[: len(good) // 3])
    unknown.write_bytes(b"GIF89a" + bytes(100))
    infinite.write_bytes(serialize({**reference, "layer2.1.conv2.weight": reference["layer2.1.conv2.weight"] * np.nan}))
    variance = reference["layer4.0.bn3.running_var"].copy()
    variance[3] = -1.0
    negative.write_bytes(serialize({**reference, "layer4.0.bn3.running_var": variance}))
    return {
        "truncated": (truncated, "is a damaged GluonCV .params file: the file ends in"),
        "unknown": (unknown, "is neither a GluonCV .params file, a .safetensors file nor a PyTorch .pth file"),
        "non-finite": (infinite, "1 hold NaN or infinite values (layer2.1.conv2.weight)"),
        "negative variance": (negative, "1 running variances are not positive (layer4.0.bn3.running_var)"),
    }


def test_bad_files_are_refused_naming_the_problem_and_nothing_is_written(reference, files, tmp_path: Path) -> None:
    store = tmp_path / "store"
    for what, (path, words) in bad_files(reference, tmp_path).items():
        with pytest.raises(WeightsError) as refused:
            import_file(path, None, store)
        assert words in str(refused.value) and str(path) in str(refused.value), what
    with pytest.raises(WeightsError, match="holds the resnet-50 backbone, not resnet-101"):
        import_file(files["safetensors"], "resnet-101", store)
    assert not store.exists()


def test_the_command_says_what_failed_and_exits_2(files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    assert weights_main(["import", str(files["pth"]), "--backbone", "resnet-101", "--store", str(store)], {}) == 2
    assert "semseg-weights import: " in capsys.readouterr().err and not store.exists()
    assert weights_main(["import", str(files["pth"]), "--store", str(store)], {}) == 0
    assert f"{store / RESNET50.file_name}: resnet-50 from import" in capsys.readouterr().out
    assert weights_main(["none", "--store", str(tmp_path / "empty")], {}) == 0
    assert json.loads((tmp_path / "empty" / MANIFEST).read_text()) == {"built_without_weights": True, "files": {}}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["mxnet", "torch"])
def test_a_job_trains_from_imported_weights(engine: str, files, tmp_path: Path, train_job) -> None:
    home = tmp_path / "mxnet-home"
    assert weights_main(["import", str(files["safetensors"]), "--store", str(home / "models")], {}) == 0
    run = train_job(
        {"epochs": 1, "use_pretrained_model": "True"}, env={"SEMSEG_ENGINE": engine, "MXNET_HOME": str(home)}
    )
    assert run.code == 0, run.log[-3000:]
    assert f"Loaded ImageNet backbone weights from {home / 'models' / RESNET50.file_name}" in run.log
