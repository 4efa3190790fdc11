"""The PyTorch engine's training loop: one epoch and evaluation on one device (one process of a multi-GPU job
under DistributedDataParallel). Imports no MXNet; semseg.fit.loop.fit drives it.

Hot-path rules as in the MXNet loop: no host sync per iteration (losses and the divergence check stay on the
device until a progress point), uint8 NHWC batches go to the device and are normalised there, and the
channels-last layout falls out of that for free (NHWC permuted to NCHW is channels_last in memory).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from semseg.data.labels import IGNORE
from semseg.engines.torch.loss import SegmentationLoss
from semseg.engines.torch.optim import MXNetOptimizer
from semseg.engines.torch.predict import FLOAT32, Inputs, Precision, Scorer
from semseg.fit.loop import DIVERGED_LOSS, Diverged, Hooks
from semseg.fit.metrics import ConfusionMatrix
from semseg.fit.sliding import DEFAULT_PIXEL_BUDGET, SlidingWindows

Batch = tuple[torch.Tensor, torch.Tensor]


class TorchLoop:
    """The network (maybe DDP-wrapped), loss and optimizer of one process on its device."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: MXNetOptimizer,
        schedule: Callable[[int], float],
        device: torch.device,
        num_classes: int,
        *,
        global_batch: int,
        aux_weight: float,
        precision: Precision = FLOAT32,
        channels_last: bool = False,
        pixel_budget: int = DEFAULT_PIXEL_BUDGET,
        crop_size: int = 0,
        class_weights: np.ndarray | None = None,
    ) -> None:
        self.net = net
        self.pixel_budget = pixel_budget
        self.crop_size = crop_size
        self.optimizer = optimizer
        self.schedule = schedule
        self.device = device
        self.num_classes = num_classes
        self.global_batch = global_batch
        self.aux_weight = aux_weight
        self.precision = precision
        self.channels_last = channels_last
        self.scaler = torch.amp.GradScaler(device.type) if precision.needs_scaler else None
        self.normalize = Inputs(device, channels_last)
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.loss = SegmentationLoss(num_classes, aux_weight, device, class_weights)

    @property
    def learning_rate(self) -> float:
        return self.schedule(max(1, self.optimizer.updates))

    def step(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """One optimizer update; the per-sample mean pixel losses (detached, on the device).

        The objective is the whole batch's weighted pixel loss normalised by its weighted labelled pixels
        (loss.py), as MXNet's loss.py on any split. Gradients are rescaled by 1 / global batch size, as
        gluon.Trainer.step(batch_size) does.
        """
        self.optimizer.set_lr(self.schedule(self.optimizer.updates + 1))
        self.optimizer.rescale_grad = 1.0 / self.global_batch
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
        samples = tick_samples = 0
        tick_loss = 0.0
        start = tick = time.perf_counter()
        for iteration, (images, masks) in enumerate(batches, 1):
            if should_stop():
                return None
            losses = self.step(images, masks)
            total += losses.sum()
            exploded = ~torch.isfinite(losses).all() | (losses.max() > DIVERGED_LOSS)
            first_bad = torch.where((first_bad < 0) & exploded, iteration, first_bad)
            samples += images.shape[0] * self.world
            if iteration % progress_every == 0:
                self._check_finite(first_bad, epoch)  # a sync point: the speed below is real
                now = time.perf_counter()
                loss_sum = float(total.item())  # this process's: no collective here
                loss = (loss_sum - tick_loss) / max((samples - tick_samples) // self.world, 1)
                speed = (samples - tick_samples) / max(now - tick, 1e-9)
                hooks.progress(epoch, iteration, speed, self.learning_rate, loss)
                tick, tick_samples, tick_loss = now, samples, loss_sum
        if should_stop():  # a stream ends its epoch early when told to stop
            return None
        self._check_finite(first_bad, epoch)
        elapsed = time.perf_counter() - start
        if self.world > 1:
            dist.all_reduce(total)
        return float(total.item()) / max(samples, 1), samples / max(elapsed, 1e-9)

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
        budget goes by sliding `crop_size` windows (semseg.fit.sliding), as the server predicts it. The network
        runs without its DDP wrapper (which would wait for every process at each batch, and the processes may
        have different numbers of validation batches), with the first process's BatchNorm statistics, as DDP
        gives them to the training steps.
        """
        net = getattr(self.net, "module", self.net)
        if self.world > 1:
            for buffer in net.buffers():
                dist.broadcast(buffer, 0)
        self.net.eval()
        classes = self.num_classes
        counts = torch.zeros(classes * classes, device=self.device, dtype=torch.long)
        windows = SlidingWindows(Scorer(net, self.normalize, self.precision), self.crop_size, self.pixel_budget)
        try:
            for images, masks in batches:
                if whole_images and self.crop_size and not windows.fits(images.shape[1], images.shape[2]):
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
            score = Scorer(net, self.normalize, self.precision)
            if not self.crop_size:
                return [score(image).argmax(axis=0).astype(np.uint8) for image in images]
            windows = SlidingWindows(score, self.crop_size, self.pixel_budget)
            return [windows.classes(image) for image in images]
        finally:
            self.net.train()
