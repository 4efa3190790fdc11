"""Which devices to train on: every GPU of the host, else the CPU."""

from __future__ import annotations

import logging

import mxnet as mx

from semseg.job import toolkit

log = logging.getLogger(__name__)


def training_contexts(batch_size: int) -> list[mx.Context]:
    """All GPUs that both the driver (nvidia-smi, via sagemaker-training) and MXNet see, at most one per
    sample of a batch; the CPU when there are none."""
    environment, _ = toolkit()
    visible = environment.num_gpus()
    usable = mx.context.num_gpus()
    if visible and not usable:
        log.warning("The driver lists %d GPU(s) but this MXNet build sees none: training on the CPU", visible)
    count = min(visible, usable)
    if count > batch_size:
        log.warning("mini_batch_size=%d is smaller than the %d GPUs: using %d of them", batch_size, count, batch_size)
        count = batch_size
    log.info("Number of GPUs being used: %d", count)
    return [mx.gpu(i) for i in range(count)] if count else [mx.cpu()]
