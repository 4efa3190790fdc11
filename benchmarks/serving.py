"""`serve` under load, on the CPU: images/s and p50/p99 latency of 480x360 JPEGs (class-id PNG answers) at 1, 2
and 4 concurrent clients against our server (gunicorn, default workers) vs a single-process loop of plain
GluonCV (decode, `net.predict`, argmax, PNG) on the same weights, in the same run (in a fresh process, warmed up
by one image, before the server starts); the peak memory of predicting one 4000x3000 JPEG to a class-id PNG;
the peak memory of answering a 2 Mpx JPEG with the probabilities of a 150-class model (ADE20K's count), against
the answer's size; and a bounded load test (4 clients) with its failures and the server's memory over time.
FCN ResNet-50, 21 classes (150 for the probabilities), crop 480, random weights (speed does not depend on them).

The exported models (issue 31): the same server answering from the GluonCV weights on MXNet (`engine`, today's
server), `model.onnx` (FP32) and `model-int8.onnx` (INT8, calibrated on 16 of the benchmark's images) on OpenVINO,
at 1 and 4 clients, for a 480x360 and a 2048x1024 JPEG (windows: over the 1 Mpx budget): images/s, p50, p99 and
the server's peak memory (parent and workers). Their accuracy: a real job (benchmarks.imbalanced's street scenes,
FCN from scratch, export and INT8 gate on) and its evaluation.json: the engine's, the FP32 export's and the INT8
model's mIOU on the job's validation images.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from gluoncv.model_zoo import FCN
from PIL import Image

from benchmarks.common import save, table
from semseg.contract.config import Config
from semseg.contract.files import ONNX_FP32, ONNX_INT8
from semseg.engines.mxnet.network import build_model, materialize
from semseg.engines.mxnet.predict import normalize
from semseg.export.quantize import quantize
from semseg.export.write import export_onnx

PORT = 18080
CONFIG = Config(num_classes=21, num_training_samples=100, crop_size=480, use_pretrained_model=False)


def make_model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    net = build_model(CONFIG, [mx.cpu()], aux=False)
    materialize(net, [mx.cpu()], CONFIG.crop_size)
    net.save_parameters(str(folder / "model_best.params"))
    (folder / "hyperparams.json").write_text(json.dumps(CONFIG.to_hyperparameters()))
    return folder / "model_best.params"


def jpeg(height: int, width: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def post(body: bytes) -> float:
    start = time.perf_counter()
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}/invocations", body, {"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(req, timeout=300) as response:
        response.read()
        assert response.status == 200
    return time.perf_counter() - start


def load(body: bytes, clients: int, per_client: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    """`clients` threads posting `body` back to back: `per_client` requests each, or for `seconds`."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        done = 0
        while (done < per_client) if per_client else (time.perf_counter() < deadline):
            try:
                latency = post(body)
                with lock:
                    latencies.append(latency)
            except Exception:  # noqa: BLE001 - a failed request is what the load test counts
                with lock:
                    failures[0] += 1
            done += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "images_per_s": len(latencies) / elapsed,
        "p50_s": float(np.percentile(latencies, 50)),
        "p99_s": float(np.percentile(latencies, 99)),
        "requests": len(latencies),
        "failures": failures[0],
    }


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and its children (the gunicorn parent and its workers)."""
    total = 0
    pids = {root}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == root:
                pids.add(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def gluoncv_loop(weights: Path, body: bytes, count: int) -> float:
    """Images/s of plain GluonCV in this process: decode, predict at the image's size, argmax, PNG; after one
    untimed image (MKL-DNN builds its primitives for a new shape on the first pass, as the server's warm-up)."""
    net = FCN(CONFIG.num_classes, backbone="resnet50", aux=False, pretrained_base=False, crop_size=480)
    net.load_parameters(str(weights))

    def one() -> None:
        image = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
        x = normalize(mx.nd.array(image[np.newaxis], dtype="uint8"))
        classes = net.predict(x)[0].argmax(axis=1)[0].asnumpy().astype(np.uint8)
        Image.fromarray(classes).save(io.BytesIO(), "PNG")

    one()
    start = time.perf_counter()
    for _ in range(count):
        one()
    return count / (time.perf_counter() - start)


def gluoncv_loop_fresh(weights: Path, body: Path, count: int) -> float:
    """gluoncv_loop in a fresh process with this process's thread setting, before the server starts."""
    code = (
        "import sys; from pathlib import Path; from benchmarks.serving import gluoncv_loop; "
        f"print(gluoncv_loop(Path({str(weights)!r}), Path({str(body)!r}).read_bytes(), {count}))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    return float(out.stdout.strip().splitlines()[-1])


def big_image_peak_mb(base: Path) -> float:
    """Peak resident memory of a fresh process predicting one 4000x3000 JPEG to a class-id PNG, as the server does."""
    (base / "big.jpg").write_bytes(jpeg(3000, 4000))
    code = f"""
import mxnet as mx, resource
from pathlib import Path
from semseg.engines.mxnet.network import load_model
from semseg.contract.model_folder import read_model_folder
from semseg.serving import codecs
from semseg.engines.mxnet.predict import Predictor
from semseg.contract.options import DEFAULT_PIXEL_BUDGET
folder = read_model_folder(Path({str(base / "model")!r}), "bench")
predictor = Predictor(load_model(folder, [mx.cpu()]), mx.cpu(), folder.config.crop_size, DEFAULT_PIXEL_BUDGET)
image = codecs.decode_image(Path({str(base / "big.jpg")!r}).read_bytes())
png = codecs.encode_png(predictor.classes(image))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def probabilities_peak(base: Path, size: tuple[int, int], classes: int = 150) -> dict[str, float]:
    """A JPEG of `size` (height, width) to a `classes`-class model (ADE20K's 150), answered with RecordIO-protobuf
    probabilities through the server's WSGI app in a fresh process: its status, the answer's size, the peak
    resident memory and the peak before the request (model loaded, warmed up on a small image)."""
    folder = base / f"model-{classes}"
    if not (folder / "model_best.params").exists():
        folder.mkdir(parents=True, exist_ok=True)
        config = Config(num_classes=classes, num_training_samples=100, crop_size=480, use_pretrained_model=False)
        net = build_model(config, [mx.cpu()], aux=False)
        materialize(net, [mx.cpu()], config.crop_size)
        net.save_parameters(str(folder / "model_best.params"))
        (folder / "hyperparams.json").write_text(json.dumps(config.to_hyperparameters()))
    image = base / f"probabilities-{size[0]}x{size[1]}.jpg"
    image.write_bytes(jpeg(*size))
    code = f"""
import io, json, resource
from pathlib import Path
from semseg.contract.model_folder import read_model_folder
from semseg.engines.mxnet.predict import load_predictor
from semseg.engines.record import PredictorSettings
from semseg.contract.options import DEFAULT_PIXEL_BUDGET
from semseg.serving.app import App
from benchmarks.serving import jpeg
folder = read_model_folder(Path({str(folder)!r}), "bench")
app = App(load_predictor(folder, "cpu", PredictorSettings(DEFAULT_PIXEL_BUDGET)), 1)
def ask(body):
    got = {{}}
    environ = {{"PATH_INFO": "/invocations", "REQUEST_METHOD": "POST", "CONTENT_TYPE": "image/jpeg",
               "HTTP_ACCEPT": "application/x-recordio-protobuf", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}}
    answer = b"".join(app(environ, lambda status, headers: got.update(status=status)))
    return int(got["status"].split()[0]), len(answer)
ask(jpeg(64, 64))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
status, length = ask(Path({str(image)!r}).read_bytes())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"status": status, "before": before, "peak": peak, "response": length}}))
"""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    mb = 2**20
    return {
        "status": figures["status"],
        "response_mb": figures["response"] / mb,
        "peak_rss_mb": figures["peak"] / mb,
        "before_request_mb": figures["before"] / mb,
        "request_mb_per_response_mb": (figures["peak"] - figures["before"]) / max(1, figures["response"]),
    }


def start_server(base: Path, **settings: str) -> subprocess.Popen[bytes]:
    """`serve` on the model folder base/model with its default workers, once /ping answers."""
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "SAGEMAKER_BIND_TO_PORT": str(PORT), **settings}
    env.pop("OMP_NUM_THREADS", None)  # the server chooses threads per worker
    server = subprocess.Popen([str(Path(sys.executable).parent / "train"), "serve"], env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ping", timeout=5)
            return server
        except OSError:
            assert time.time() < deadline and server.poll() is None, "the server did not start"
            time.sleep(1)


def export_models(base: Path, weights: Path) -> None:
    """model.onnx of the benchmark's weights and its INT8 version, calibrated on 16 of the benchmark's JPEGs."""
    from semseg.data.images import decode_image

    fp32 = export_onnx(CONFIG, weights, base / "model" / ONNX_FP32)
    quantize(fp32, fp32.with_name(ONNX_INT8), (decode_image(jpeg(480, 480, seed)) for seed in range(16)))


def exported_rows(base: Path, weights: Path, quick: bool) -> tuple[list[list[Any]], dict[str, Any]]:
    """Today's server (the engine) and the two exports, at 1 and 4 clients, 480x360 and 2048x1024 JPEGs."""
    export_models(base, weights)
    sizes = {"480x360": (jpeg(360, 480), 2 if quick else 4), "2048x1024": (jpeg(1024, 2048, 1), 1 if quick else 2)}
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    for model in ("engine", "fp32", "int8"):
        server = start_server(base, SEMSEG_SERVE_MODEL=model)
        try:
            for size, (body, per_client) in sizes.items():
                post(body)  # warm-up: the first pass at this size (MXNet traces, OpenVINO compiles)
                post(body)  # the other worker's
                for clients in (1, 4):
                    memory: list[float] = []
                    stop = threading.Event()

                    def sample(
                        pid: int = server.pid, into: list[float] = memory, until: threading.Event = stop
                    ) -> None:
                        while not until.wait(0.5):
                            into.append(tree_rss_mb(pid))

                    sampler = threading.Thread(target=sample)
                    sampler.start()
                    r = load(body, clients, per_client=per_client)
                    stop.set()
                    sampler.join()
                    r["peak_rss_mb"] = max(memory, default=tree_rss_mb(server.pid))
                    results[f"{model}_{size}_{clients}_clients"] = r
                    today = results.get(f"engine_{size}_{clients}_clients", r)["images_per_s"]
                    rows.append([model, size, clients, r["requests"], r["images_per_s"], r["p50_s"], r["p99_s"],
                                 r["peak_rss_mb"], r["images_per_s"] / today])  # fmt: skip
                    print(rows[-1], flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    return rows, results


def runtime_rows(base: Path, quick: bool) -> tuple[list[list[Any]], dict[str, Any]]:
    """OpenVINO against ONNX Runtime on the same exported models and images, in this process (both cores, the
    server's predictor: windows over the pixel budget), after one untimed image: images/s per model, runtime and
    size, and the largest difference of their FP32 probabilities."""
    from semseg.contract.options import DEFAULT_PIXEL_BUDGET
    from semseg.data.images import decode_image
    from semseg.export import runtime

    images = {"480x360": decode_image(jpeg(360, 480)), "2048x1024": decode_image(jpeg(1024, 2048, 1))}
    counts = {"480x360": 2 if quick else 6, "2048x1024": 1 if quick else 2}
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    outputs: dict[str, np.ndarray] = {}
    for name in (ONNX_FP32, ONNX_INT8):
        for on in runtime.RUNTIMES:
            model = runtime.predictor(base / "model" / name, on, CONFIG.num_classes, 480, DEFAULT_PIXEL_BUDGET)
            for size, image in images.items():
                model.classes(image)
                start = time.perf_counter()
                for _ in range(counts[size]):
                    model.classes(image)
                speed = counts[size] / (time.perf_counter() - start)
                results[f"{name}_{on}_{size}"] = speed
                rows.append([name, runtime.LABELS[on], size, speed])
            if name == ONNX_FP32:
                outputs[on] = model.probabilities(images["480x360"])
    results["fp32_max_difference"] = float(np.abs(outputs["openvino"] - outputs["onnxruntime"]).max())
    for row in rows:
        row.append(row[3] / results[f"{row[0]}_onnxruntime_{row[2]}"])
    return rows, results


def exported_accuracy(base: Path, quick: bool) -> dict[str, Any]:
    """A real job with the exports and the INT8 gate on: its evaluation.json's mIOU of each model."""
    from benchmarks.imbalanced import train

    images, size, epochs = (16, 64, 8) if quick else (32, 64, 24)
    train(base, "auto", 0, images, size, epochs)
    evaluation = json.loads((base / "output" / "data" / "evaluation.json").read_text())
    gate = evaluation["int8"]
    return {
        "job": f"FCN ResNet-50 from scratch, {images} street scenes {size}x{size}, {epochs} epochs, class_weights=auto",
        "engine_mIOU": evaluation["mIOU"],
        "fp32_mIOU": gate["fp32_mIOU"],
        "int8_mIOU": gate["int8_mIOU"],
        "int8_kept": gate["kept"],
        "gate": gate["reason"],
    }


def main(quick: bool) -> None:
    base = Path(os.environ.get("TMPDIR", "/tmp")) / "semseg-bench-serving"
    weights = make_model(base / "model")
    body = jpeg(360, 480)
    per_client = 3 if quick else 8
    (base / "loop.jpg").write_bytes(body)
    baseline = gluoncv_loop_fresh(weights, base / "loop.jpg", per_client * 2)
    server = start_server(base, SEMSEG_SERVE_MODEL="engine")
    try:
        post(body)  # warm-up: every worker's first pass
        rows: list[list[Any]] = []
        results: dict[str, Any] = {}
        results["gluoncv_loop_images_per_s"] = baseline
        rows.append(["plain GluonCV loop, 1 process", "-", baseline, "-", "-", 1.0])
        for clients in (1, 2, 4):
            r = load(body, clients, per_client=per_client)
            results[f"server_{clients}_clients"] = r
            ratio = r["images_per_s"] / baseline
            rows.append(
                [f"server, {clients} client(s)", r["requests"], r["images_per_s"], r["p50_s"], r["p99_s"], ratio]
            )
        seconds = 20.0 if quick else 60.0
        memory: list[float] = []
        sampler_stop = threading.Event()

        def sample() -> None:
            while not sampler_stop.wait(1.0):
                memory.append(tree_rss_mb(server.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        soak = load(body, 4, seconds=seconds)
        sampler_stop.set()
        sampler.join()
        tenth = max(1, len(memory) // 10)
        soak |= {"rss_first_mb": float(np.mean(memory[:tenth])), "rss_last_mb": float(np.mean(memory[-tenth:]))}
        results["load_test"] = soak
    finally:
        server.terminate()
        server.wait(timeout=60)
    results["big_image_peak_rss_mb"] = big_image_peak_mb(base)
    answers = {
        "probabilities_150_classes_2mpx": probabilities_peak(base, (1250, 1600)),  # over a record: a 413
        "probabilities_150_classes_0.85mpx": probabilities_peak(base, (850, 1000)),  # the largest that is answered
    }
    results |= answers
    print(
        table("serve: 480x360 JPEG -> class-id PNG", ["run", "requests", "images/s", "p50 s", "p99 s", "x loop"], rows)
    )
    print(
        f"load test, 4 clients for {seconds:.0f} s: {soak['requests']} requests, {soak['failures']} failed; "
        f"server RSS {soak['rss_first_mb']:.0f} MB (first tenth) -> {soak['rss_last_mb']:.0f} MB (last tenth)"
    )
    print(f"4000x3000 JPEG -> class-id PNG: peak RSS {results['big_image_peak_rss_mb']:.0f} MB (goal < 2048)")
    for name, answer in answers.items():
        print(
            f"{name}: HTTP {answer['status']}, answer {answer['response_mb']:.0f} MB; peak RSS "
            f"{answer['peak_rss_mb']:.0f} MB, {answer['before_request_mb']:.0f} MB before the request "
            f"(the request added {answer['request_mb_per_response_mb']:.1f} x the answer's size)"
        )
    print()
    exports, figures = exported_rows(base, weights, quick)
    results["exports"] = figures
    print(
        table(
            "serve: the engine (today's server) and the exported models on OpenVINO, JPEG -> class-id PNG",
            ["model", "image", "clients", "requests", "images/s", "p50 s", "p99 s", "peak MB", "x engine"],
            exports,
        )
    )
    compared, speeds = runtime_rows(base, quick)
    results["runtimes"] = speeds
    print(
        table(
            "the exported models in one process (2 threads): OpenVINO against ONNX Runtime",
            ["model", "runtime", "image", "images/s", "x ONNX Runtime"],
            compared,
        )
    )
    print(f"FP32 probabilities, OpenVINO against ONNX Runtime: largest difference {speeds['fp32_max_difference']:.2g}")
    accuracy = exported_accuracy(base / "accuracy", quick)
    results["exports_accuracy"] = accuracy
    print(
        f"{accuracy['job']}: validation mIOU engine {accuracy['engine_mIOU']:.4f}, model.onnx "
        f"{accuracy['fp32_mIOU']:.4f}, model-int8.onnx {accuracy['int8_mIOU']:.4f} (kept: {accuracy['int8_kept']})"
    )
    print(cpu_features())
    save("serving", results)


def cpu_features() -> str:
    """The instruction sets the runtimes' speed depends on, as this CPU reports them."""
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    return "CPU instruction sets: " + ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)
