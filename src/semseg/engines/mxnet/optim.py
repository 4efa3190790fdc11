"""The job's trainer: the configuration's optimizer and per-iteration learning-rate schedule (gluon.Trainer).

The schedule counts optimizer updates (iterations), not epochs: iterations per epoch come from
Config.iterations_per_epoch (the last partial batch is dropped), as in the managed algorithm.
"""

from __future__ import annotations

from typing import Any

import mxnet as mx
from mxnet import gluon
from mxnet.contrib import amp

from semseg.contract.config import Config
from semseg.fit.schedule import POLY_POWER


def lr_scheduler(config: Config) -> mx.lr_scheduler.LRScheduler:
    iters_per_epoch = config.iterations_per_epoch
    total = max(1, iters_per_epoch * config.epochs)
    if config.lr_scheduler == "poly":
        return mx.lr_scheduler.PolyScheduler(max_update=total, base_lr=config.learning_rate, pwr=POLY_POWER)
    if config.lr_scheduler == "cosine":
        return mx.lr_scheduler.CosineScheduler(max_update=total, base_lr=config.learning_rate)
    steps = [max(1, epoch * iters_per_epoch) for epoch in config.lr_scheduler_step]
    return mx.lr_scheduler.MultiFactorScheduler(
        step=sorted(set(steps)), factor=config.lr_scheduler_factor, base_lr=config.learning_rate
    )


def optimizer_params(config: Config) -> dict[str, Any]:
    """Keyword arguments for `gluon.Trainer(..., optimizer=config.optimizer, optimizer_params=...)`."""
    params: dict[str, Any] = {
        "learning_rate": config.learning_rate,
        "wd": config.weight_decay,
        "lr_scheduler": lr_scheduler(config),
    }
    if config.uses_momentum:
        params["momentum"] = config.momentum
    elif config.optimizer == "rmsprop":
        # centered RMSProp is the variant in which gamma2 (momentum) takes effect
        params.update(gamma1=config.gamma1, gamma2=config.gamma2, centered=True)
    if config.precision_dtype == "float16":
        params["multi_precision"] = True
    return params


def trainer_for(net: gluon.Block, config: Config, kvstore: Any = None) -> gluon.Trainer:
    """The trainer of `net` (float16: with AMP's loss scaling). With a parameter server's `kvstore` (several hosts)
    the servers sum the gradients and every host applies the update itself (its optimizer state is its own,
    checkpointable copy); else the gradients of the host's devices are summed on them."""
    set_backbone_lr(net, config.backbone_lr_mult)
    trainer = gluon.Trainer(
        net.collect_params(),
        config.optimizer,
        optimizer_params(config),
        kvstore=kvstore or "device",
        update_on_kvstore=False if kvstore else None,
    )
    if config.precision_dtype == "float16":
        amp.init_trainer(trainer)  # dynamic loss scaling (amp.init() preceded the network)
    return trainer


def set_backbone_lr(net: gluon.Block, mult: float) -> None:
    """backbone_lr_multiplier: every parameter outside the heads (`head`, `auxlayer`, which GluonCV gives 10x)
    learns at `mult` x the learning rate."""
    heads = [getattr(net, name, None) for name in ("head", "auxlayer")]
    skip = {id(p) for block in heads if block is not None for p in block.collect_params().values()}
    for parameter in net.collect_params().values():
        if id(parameter) not in skip:
            parameter.lr_mult = mult
