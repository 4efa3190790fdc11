# SageMaker-compatible semantic segmentation training image.
#   GPU (default):  docker build -t semseg:gpu .
#   CPU:            docker build -t semseg:cpu --build-arg BASE_IMAGE=debian:bookworm-slim --build-arg FLAVOUR=cpu .
# Image facts live in these build args: the base (CUDA 11.7 + cuDNN 8 runtime, which also ships NCCL) must
# match the MXNet wheel in docker/requirements-<FLAVOUR>.lock (mxnet-cu117==1.9.1 for gpu, mxnet==1.9.1 for cpu).
ARG BASE_IMAGE=nvidia/cuda:11.7.1-cudnn8-runtime-ubuntu22.04

FROM ${BASE_IMAGE} AS builder
ARG FLAVOUR=gpu
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# gcc + python3-dev: sagemaker-training is a source package with a C extension
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY docker/requirements-${FLAVOUR}.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-deps --require-hashes -r /tmp/requirements.lock
# Our package as a wheel, kept out of /opt/venv: a code change then leaves the venv layer (and the weight
# download after it) cached.
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels /src

FROM ${BASE_IMAGE} AS runtime
ARG FLAVOUR=gpu
ARG PREFETCH_WEIGHTS=1
# MXNET_CUDNN_AUTOTUNE_DEFAULT=1: training shapes are fixed (crop_size), so cuDNN's one-off search for the
# fastest convolution algorithms pays back; MXNET_GPU_MEM_POOL_TYPE=Round: whole-image validation feeds
# varying shapes, and rounded pool buckets reuse memory instead of growing the pool per shape.
ENV DEBIAN_FRONTEND=noninteractive \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MXNET_HOME=/opt/mxnet \
    MXNET_CUDNN_AUTOTUNE_DEFAULT=1 \
    MXNET_GPU_MEM_POOL_TYPE=Round
# libgomp1 libquadmath0 libgfortran5: MXNet's bundled OpenBLAS/MKL-DNN need them (not in minimal bases)
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 libgomp1 libquadmath0 libgfortran5 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /opt/venv /opt/venv
# ImageNet backbones for use_pretrained_model=True; PREFETCH_WEIGHTS=0 for offline builds.
COPY docker/prefetch_weights.py /opt/semseg/
RUN if [ "$PREFETCH_WEIGHTS" = "1" ]; then /opt/venv/bin/python /opt/semseg/prefetch_weights.py; fi
COPY --from=builder /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl && rm -rf /tmp/wheels
# Fail the build, not the job, when a shared library of MXNet (libnccl.so.2, cuDNN, ...) does not resolve.
COPY docker/check_image.py /opt/semseg/
RUN /opt/venv/bin/python /opt/semseg/check_image.py
WORKDIR /opt/semseg
# exec form: SIGTERM from `docker stop` / StopTrainingJob reaches Python directly
ENTRYPOINT ["/opt/venv/bin/train"]
# Last: a build arg that changes (the revision, on every commit) invalidates the cache of every RUN after it.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="semseg" \
      org.opencontainers.image.description="SageMaker-compatible semantic segmentation training (MXNet 1.9.1, GluonCV 0.10.5)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
