# SageMaker-compatible semantic segmentation training image (MXNet 1.9.1, GluonCV 0.10.5).
#   GPU (default):  docker build -t semseg:gpu .
#   CPU:            docker build -t semseg:cpu --build-arg FLAVOUR=cpu .
#   torch (the PyTorch engine; V100 to Blackwell, the only one for H100/H200 and Blackwell):
#                   docker build -t semseg:torch --build-arg FLAVOUR=torch --build-arg ENGINE=torch .
# All flavours: Debian bookworm, Python 3.11, one virtual environment from a hashed lock
# (docker/requirements-<FLAVOUR>.lock). The torch lock pins torch 2.10.0 with its CUDA 12.8 wheels (code for
# sm_70-sm_120, drivers >= 525) and the CPU mxnet, which only reads and writes GluonCV's parameter files. The GPU lock pins mxnet-cu117==1.9.1 and the CUDA 11.7 runtime
# libraries it needs as NVIDIA's wheels (cuBLAS, cuDNN 8.5, NCCL 2.14, ...), so no CUDA base image is needed;
# the driver (libcuda.so.1, nvidia-smi) comes from the host's NVIDIA runtime on SageMaker GPU instances and
# with `docker run --gpus all`. MXNet 1.9.1's GPU code covers compute capability 5.0-8.6: see the README.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS wheel
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN python3 -m venv /tmp/build && /tmp/build/bin/pip wheel --no-deps --wheel-dir /wheels /src

FROM ${BASE_IMAGE} AS venv
# MXNET_CUDNN_AUTOTUNE_DEFAULT=1: training shapes are fixed (crop_size), so cuDNN's one-off search for the
# fastest convolution algorithms pays back; MXNET_GPU_MEM_POOL_TYPE=Round: whole-image validation feeds
# varying shapes, and rounded pool buckets reuse memory instead of growing the pool per shape.
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MXNET_HOME=/opt/mxnet \
    MXNET_CUDNN_AUTOTUNE_DEFAULT=1 \
    MXNET_GPU_MEM_POOL_TYPE=Round \
    MPLCONFIGDIR=/opt/matplotlib \
    MPLBACKEND=Agg
# libgomp1 libquadmath0 libgfortran5: MXNet's bundled OpenBLAS/MKL-DNN need them (not in minimal bases).
# Before any build arg: every RUN after an ARG depends on its value, and this layer is the same for all flavours.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv libgomp1 libquadmath0 libgfortran5 \
    ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ARG FLAVOUR=gpu
COPY docker/requirements-${FLAVOUR}.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-deps --require-hashes -r /tmp/requirements.lock \
 && rm /tmp/requirements.lock \
 && /opt/venv/bin/python -c "import matplotlib.pyplot" && chmod -R a+rwX /opt/matplotlib
# (matplotlib's font cache, built once here rather than at every job's first picture; any user may read it)
# GPU: the CUDA wheels' lib folders on the loader's path, so libmxnet.so finds libcudart, cuDNN, NCCL, ...
# (ld.so.conf.d survives the NVIDIA runtime's own ldconfig run, which adds the driver's libraries).
RUN if [ "$FLAVOUR" = gpu ]; then \
      ls -d /opt/venv/lib/python3*/site-packages/nvidia/*/lib > /etc/ld.so.conf.d/semseg-cuda-wheels.conf \
      && ldconfig; \
    fi
# The pretrained backbones for use_pretrained_model=True, in a stage of their own: `semseg-weights fetch` (the
# package's own command) writes them to the store, $MXNET_HOME/models, from the first source that gives the right
# file: GluonCV's model store, the Hugging Face Hub (timm's copies of the ResNets, the authors' DINOv2), DINOv2's
# authors' files, then SEMSEG_WEIGHTS_URL. Every image has the ResNets; the torch image (ENGINE=torch) has
# DINOv2's ViT-S/14 and ViT-B/14 too (about 90 and 350 MB), as only its engine trains them. The build fails,
# naming each source and why, where none does. PREFETCH_WEIGHTS=0 builds an image without them (its jobs say so).
# The store's manifest (semseg-weights.json) records where each file came from.
FROM venv AS weights
ARG PREFETCH_WEIGHTS=1
ARG WEIGHTS_SOURCES=gluoncv,huggingface,authors,url
ARG ENGINE=mxnet
ARG SEMSEG_WEIGHTS_URL=
ARG SEMSEG_WEIGHTS_SHA256=
COPY --from=wheel /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl \
 && if [ "$PREFETCH_WEIGHTS" = "1" ]; then /opt/venv/bin/semseg-weights fetch --engine "$ENGINE" --sources "$WEIGHTS_SOURCES"; \
    else /opt/venv/bin/semseg-weights none; fi

FROM venv AS runtime
COPY --from=weights /opt/mxnet/models /opt/mxnet/models
# The engine and our package last, from the wheel stage: a code change leaves the venv layers cached (the weights
# stage runs again, and, where the files it fetches are the same, they are the same layer's content).
ARG ENGINE=mxnet
ENV SEMSEG_ENGINE=${ENGINE}
COPY --from=wheel /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl && rm -rf /tmp/wheels
# Fail the build, not the job, when a shared library of MXNet (libnccl.so.2, cuDNN, ...) does not resolve.
COPY docker/check_image.py /opt/semseg/
RUN /opt/venv/bin/python /opt/semseg/check_image.py
# What the image carries and under which terms: every installed distribution with its licence and licence files,
# the weights' origin and terms (docker/licenses.py); the build fails on an unknown licence or a non-commercial one.
COPY LICENSE NOTICE docker/licenses.py /opt/semseg/
RUN /opt/venv/bin/python /opt/semseg/licenses.py /opt/semseg/THIRD_PARTY_LICENSES
WORKDIR /opt/semseg
# exec form: SIGTERM from `docker stop` / StopTrainingJob reaches Python directly
ENTRYPOINT ["/opt/venv/bin/train"]
# Last: a build arg that changes (the revision, on every commit) invalidates the cache of every RUN after it.
# VERSION: semseg.__version__ (tests/unit/test_release.py holds them equal; docker/build.sh and buildspec pass it)
ARG VERSION=1.0.0
ARG REVISION=unknown
ARG SOURCE=unknown
ARG FLAVOUR=gpu
ARG PREFETCH_WEIGHTS=1
ARG WEIGHTS_SOURCES=gluoncv,huggingface,authors,url
LABEL org.opencontainers.image.title="semseg" \
      org.opencontainers.image.description="SageMaker-compatible semantic segmentation training (MXNet 1.9.1, GluonCV 0.10.5)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      com.semseg.flavour="${FLAVOUR}" \
      com.semseg.engine="${ENGINE}" \
      com.semseg.weights.prefetched="${PREFETCH_WEIGHTS}" \
      com.semseg.weights.sources="${WEIGHTS_SOURCES}"
