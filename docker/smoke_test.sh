#!/usr/bin/env bash
# Smoke test of a built image: make the example job with the image's own generator, train it through the
# entry point with a mounted /opt/ml, check the artifacts and the failure-free exit.  Usage: smoke_test.sh IMAGE
# SMOKE_DOCKER_ARGS adds `docker run` options, e.g. "--gpus all" for the GPU image (it needs a driver to run).
# SMOKE_ENGINE, when set (MXNet or PyTorch), is the engine the log's engine line must name.
set -euo pipefail
image=${1:?usage: smoke_test.sh IMAGE}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2086
docker run --rm ${SMOKE_DOCKER_ARGS:-} -v "$work:/work" --entrypoint /opt/venv/bin/python "$image" \
  -m semseg.example /work/ml --images 4 --size 32 --epochs 1 >/dev/null
# shellcheck disable=SC2086
docker run --rm ${SMOKE_DOCKER_ARGS:-} -v "$work/ml:/opt/ml" "$image" train | tee "$work/train.log"
for artifact in model_algo-1 model_best.params hyperparams.json; do
  test -s "$work/ml/model/$artifact" || { echo "smoke test: $artifact missing" >&2; exit 1; }
done
grep -q "validation mIOU: " "$work/train.log"
if [ -n "${SMOKE_ENGINE:-}" ]; then
  grep -q "Engine: ${SMOKE_ENGINE} " "$work/train.log" || { echo "smoke test: not the ${SMOKE_ENGINE} engine" >&2; exit 1; }
fi
echo "smoke test passed: $image"
