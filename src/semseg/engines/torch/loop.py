"""The PyTorch engine's training loop: one epoch and evaluation on one device (one process of a multi-GPU job
under DistributedDataParallel). Imports no MXNet; semseg.fit.loop.fit drives it.

Hot-path rules as in the MXNet loop: no host sync per iteration (losses and the divergence check stay on the
device until a progress point), uint8 NHWC batches go to the device and are normalised there, and the
channels-last layout falls out of that for free (NHWC permuted to NCHW is channels_last in memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from semseg.data.labels import IGNORE
from semseg.engines.torch.loss import SegmentationLoss
from semseg.engines.torch.optim import MXNetOptimizer
from semseg.engines.torch.predict import Inputs, Precision, Scorer
from semseg.fit.loop import DIVERGED_LOSS, Diverged, EpochMeter, Hooks, LoopSettings
from semseg.measures.confusion import ConfusionMatrix
from semseg.measures.sliding import SlidingWindows

Batch = tuple[torch.Tensor, torch.Tensor]


class Loop:
    """The network (maybe DDP-wrapped), loss and optimizer of one process on its device; the processes of a job
    exchange through torch.distributed's default group (DDP's gradients, the loss, the validation counts)."""

    def __init__(self, net: nn.Module, optimizer: MXNetOptimizer, device: torch.device, settings: LoopSettings) -> None:
        """Channels-last and mixed precision (bf16, else fp16 with a scaler) on GPUs; gradients are divided by
        `settings.global_batch`, as gluon.Trainer.step(batch_size) does."""
        self.net = net
        self.optimizer = optimizer
        self.device = device
        self.settings = settings
        self.precision = Precision.for_device(device, settings.mixed_precision)
        self.scaler = torch.amp.GradScaler(device.type) if self.precision.needs_scaler else None
        self.normalize = Inputs(device, channels_last=device.type == "cuda")
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.loss = SegmentationLoss(settings.num_classes, settings.aux_weight, device, settings.class_weights)

    @property
    def learning_rate(self) -> float:
        return self.optimizer.schedule(max(1, self.optimizer.updates))

    def step(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """One optimizer update; the per-sample mean pixel losses (detached, on the device).

        The objective is the whole batch's weighted pixel loss normalised by its weighted labelled pixels
        (loss.py), as MXNet's loss.py on any split. Gradients are rescaled by 1 / global batch size, as
        gluon.Trainer.step(batch_size) does.
        """
        self.optimizer.set_lr(self.optimizer.schedule(self.optimizer.updates + 1))
        self.optimizer.rescale_grad = 1.0 / self.settings.global_batch
        x = self.normalize(images)
        labels = masks.to(self.device, non_blocking=True).long()
        with self.precision.autocast_on(self.device):
            outputs = self.net(x)
        pixels = self.loss.pixels(outputs, labels)
        objective = self.loss.objective(pixels, labels)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(objective).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            objective.backward()
            self.optimizer.step()
        return pixels.detach().mean(dim=(1, 2))

    def train_epoch(
        self,
        batches: Iterable[Batch],
        epoch: int,
        hooks: Hooks,
        progress_every: int,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> tuple[float, float] | None:
        """One pass over `batches`: (mean loss per sample, samples per second of all processes), or None."""
        self.net.train()
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        first_bad = torch.full((), -1, device=self.device, dtype=torch.long)
        meter = EpochMeter(hooks, epoch, progress_every, self.world)
        for iteration, (images, masks) in enumerate(batches, 1):
            if should_stop():
                return None
            losses = self.step(images, masks)
            total += losses.sum()
            exploded = ~torch.isfinite(losses).all() | (losses.max() > DIVERGED_LOSS)
            first_bad = torch.where((first_bad < 0) & exploded, iteration, first_bad)
            if meter.count(iteration, images.shape[0]):
                self._check_finite(first_bad, epoch)  # a sync point: the speed is real
                meter.progress(iteration, float(total.item()), self.learning_rate)  # this process's loss
        if should_stop():  # a stream ends its epoch early when told to stop
            return None
        self._check_finite(first_bad, epoch)
        if self.world > 1:
            dist.all_reduce(total)
        return meter.result(float(total.item()))

    def _check_finite(self, first_bad: torch.Tensor, epoch: int) -> None:
        bad = first_bad.clone()
        if self.world > 1:  # every process stops together, at the first bad iteration of any
            bad = torch.where(bad < 0, torch.iinfo(torch.long).max, bad)
            dist.all_reduce(bad, op=dist.ReduceOp.MIN)
            bad = torch.where(bad == torch.iinfo(torch.long).max, -1, bad)
        if int(bad.item()) >= 0:
            raise Diverged(epoch, int(bad.item()))

    @torch.inference_mode()
    def evaluate(self, batches: Iterable[Batch], whole_images: bool) -> ConfusionMatrix:
        """Confusion matrix over this process's validation batches, summed over all processes.

        Any image size runs as it is (the networks resize to their input); a whole image above the pixel
        budget goes by sliding `crop_size` windows (semseg.measures.sliding), as the server predicts it. The network
        runs without its DDP wrapper (which would wait for every process at each batch, and the processes may
        have different numbers of validation batches), with the first process's BatchNorm statistics, as DDP
        gives them to the training steps.
        """
        net = getattr(self.net, "module", self.net)
        if self.world > 1:
            for buffer in net.buffers():
                dist.broadcast(buffer, 0)
        self.net.eval()
        classes = self.settings.num_classes
        counts = torch.zeros(classes * classes, device=self.device, dtype=torch.long)
        windows = self._windows(net)
        try:
            for images, masks in batches:
                if whole_images and not windows.fits(images.shape[1], images.shape[2]):
                    predicted = [torch.from_numpy(windows.classes(image.numpy())) for image in images]
                    prediction = torch.stack(predicted).to(self.device).long()
                else:
                    with self.precision.autocast_on(self.device):
                        prediction = net(self.normalize(images))[0].argmax(dim=1)
                labels = masks.to(self.device, non_blocking=True).long()
                valid = labels != IGNORE
                counts += torch.bincount(labels[valid] * classes + prediction[valid], minlength=classes * classes)
        finally:
            self.net.train()
        if self.world > 1:
            dist.all_reduce(counts)
        matrix = ConfusionMatrix(classes)
        matrix.add_counts(counts.cpu().numpy())
        return matrix

    @torch.inference_mode()
    def classes(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Class ids of a few images in this process alone (the network without its DDP wrapper, which would
        wait for the other processes), by windows above the pixel budget, as `evaluate` scores them."""
        net = getattr(self.net, "module", self.net)
        net.eval()
        try:
            windows = self._windows(net)
            return [windows.classes(image) for image in images]
        finally:
            self.net.train()

    def _windows(self, net: nn.Module) -> SlidingWindows:
        scorer = Scorer(net, self.normalize, self.precision)
        return SlidingWindows(scorer, self.settings.crop_size, self.settings.pixel_budget)
