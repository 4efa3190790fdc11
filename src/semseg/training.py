"""Which engine trains the job (SEMSEG_ENGINE: `mxnet`, the default, or `torch`). The engines load their framework
here, after the configuration checks."""

from __future__ import annotations

from semseg.contract.config import Config
from semseg.contract.job import Job
from semseg.contract.options import RunOptions
from semseg.contract.signals import StopFlag
from semseg.fit.loop import FitResult


def train(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> FitResult:
    """Run the whole job on the engine `options` names; artifacts land in job.paths.model_dir."""
    if options.engine == "torch":
        from semseg.engines.torch.job import train_torch

        return train_torch(job, config, options, stop)
    from semseg.engines.mxnet.job import train_mxnet

    return train_mxnet(job, config, options, stop)
