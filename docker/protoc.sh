#!/usr/bin/env bash
# Regenerate src/semseg/serving/record_pb2.py from record.proto with protoc from grpcio-tools (needs the
# package index). The generated module needs a protobuf runtime at least as new as that protoc (requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../src/semseg/serving"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q grpcio-tools
"$tmp/venv/bin/python" -m grpc_tools.protoc --proto_path=. --python_out=. record.proto
echo "wrote src/semseg/serving/record_pb2.py"
