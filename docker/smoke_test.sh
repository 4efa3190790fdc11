#!/usr/bin/env bash
# Smoke test of a built image: make the example job with the image's own generator, train it through the
# entry point with a mounted /opt/ml, check the artifacts and the failure-free exit, then `serve` the model it
# wrote (host network, port SMOKE_PORT, default 8080) and ask it for one image's class PNG.
#   Usage: smoke_test.sh IMAGE
# SMOKE_DOCKER_ARGS adds `docker run` options, e.g. "--gpus all" for the GPU image (it needs a driver to run).
# SMOKE_ENGINE, when set (MXNet or PyTorch), is the engine the log's engine line must name.
# SMOKE_SERVED, when set, is a pattern (grep -E) the server's start log must match: what answers.
set -euo pipefail
image=${1:?usage: smoke_test.sh IMAGE}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2086
docker run --rm ${SMOKE_DOCKER_ARGS:-} -v "$work:/work" --entrypoint /opt/venv/bin/python "$image" \
  -m semseg.example /work/ml --images 4 --size 32 --epochs 1 >/dev/null
# shellcheck disable=SC2086
docker run --rm ${SMOKE_DOCKER_ARGS:-} -v "$work/ml:/opt/ml" "$image" train | tee "$work/train.log"
for artifact in model_algo-1 model_best.params hyperparams.json model.onnx; do
  test -s "$work/ml/model/$artifact" || { echo "smoke test: $artifact missing" >&2; exit 1; }
done
grep -q "validation mIOU: " "$work/train.log"
if [ -n "${SMOKE_ENGINE:-}" ]; then
  grep -q "Engine: ${SMOKE_ENGINE} " "$work/train.log" || { echo "smoke test: not the ${SMOKE_ENGINE} engine" >&2; exit 1; }
fi
port=${SMOKE_PORT:-8080}
name="semseg-smoke-$$"
# shellcheck disable=SC2086
docker run -d --name "$name" ${SMOKE_DOCKER_ARGS:-} --network host -e SAGEMAKER_BIND_TO_PORT="$port" \
  -e SAGEMAKER_MODEL_SERVER_WORKERS=1 -v "$work/ml/model:/opt/ml/model:ro" "$image" serve >/dev/null
trap 'docker rm -f "$name" >/dev/null 2>&1; rm -rf "$work"' EXIT
picture=$(find "$work/ml/input/data/validation" -name '*.jpg' | head -n 1)
python3 - "$port" "$picture" <<'ASK'
import sys, time, urllib.request
port, picture = sys.argv[1], sys.argv[2]
for _ in range(240):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5)
        break
    except OSError:
        time.sleep(0.5)
request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", open(picture, "rb").read(),
                                 {"Content-Type": "image/jpeg", "Accept": "image/png"})
with urllib.request.urlopen(request, timeout=120) as answer:
    body = answer.read()
    assert answer.status == 200 and body.startswith(b"\x89PNG"), (answer.status, body[:100])
print(f"smoke test: serve answered a {len(body)}-byte class PNG")
ASK
docker logs "$name" > "$work/serve.log" 2>&1
if [ -n "${SMOKE_SERVED:-}" ]; then
  grep -Eq "Serving /opt/ml/model: ${SMOKE_SERVED}" "$work/serve.log" \
    || { echo "smoke test: serve did not answer with ${SMOKE_SERVED}" >&2; tail -n 20 "$work/serve.log" >&2; exit 1; }
fi
grep -E "Serving /opt/ml/model: " "$work/serve.log"
echo "smoke test passed: $image"
