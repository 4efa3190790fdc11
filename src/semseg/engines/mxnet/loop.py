"""The MXNet engine's training loop: one epoch and evaluation on MXNet contexts (semseg.fit.loop.fit drives it).
No file IO, no log formats.

Hot-path rules: no host sync per iteration (losses are summed on the device and read only at progress
points), batches arrive as uint8 and are normalised on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.contrib import amp

from semseg.data.labels import IGNORE
from semseg.engines.mxnet.loss import SegmentationLoss
from semseg.engines.mxnet.network import set_output_size
from semseg.engines.mxnet.predict import Scorer, normalize
from semseg.fit.class_weights import MIN_WEIGHT_SUM, pixel_weights
from semseg.fit.loop import DIVERGED_LOSS, Diverged, EpochMeter, Hooks, LoopSettings
from semseg.measures.confusion import ConfusionMatrix
from semseg.measures.sliding import SlidingWindows

if TYPE_CHECKING:
    from semseg.engines.mxnet.exchange import Exchange

HYBRIDIZE = {"static_alloc": True, "static_shape": True}


class Loop:
    """The network, loss and trainer of one job on its devices (of this host: with several hosts, `exchange`
    sums what the hosts must share, see semseg.engines.mxnet.exchange)."""

    def __init__(
        self,
        net: gluon.HybridBlock,
        trainer: gluon.Trainer,
        contexts: Sequence[mx.Context],
        settings: LoopSettings,
        exchange: Exchange | None = None,
    ) -> None:
        """Gradients are divided by `settings.global_batch` (the batch of all hosts; the parameter server sums the
        hosts' gradients), and every iteration the batch's weighted count of labelled pixels is summed over the
        hosts, so the loss is normalised by the whole batch's."""
        self.net = net
        self.trainer = trainer
        self.contexts = list(contexts)
        self.settings = settings
        self.exchange = exchange
        table = pixel_weights(settings.num_classes, settings.class_weights)
        self.weights_cpu = mx.nd.array(table, ctx=mx.cpu())
        self.weights = [mx.nd.array(table, ctx=ctx) for ctx in contexts]
        self.loss = SegmentationLoss(settings.aux_weight, IGNORE)
        net.hybridize(**HYBRIDIZE)
        self.loss.hybridize(**HYBRIDIZE)

    def train_epoch(
        self,
        batches: Iterable[tuple[mx.nd.NDArray, mx.nd.NDArray]],
        epoch: int,
        hooks: Hooks,
        progress_every: int,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> tuple[float, float] | None:
        """One pass over `batches`: (mean loss per sample of this host, samples per second), or None when stopped.

        Divergence is tracked on the device (the first iteration whose loss is not finite) and read at
        the progress points and at the end, so the hot path never waits for the host.
        """
        totals = [mx.nd.zeros((1,), ctx=ctx) for ctx in self.contexts]
        first_bad = [mx.nd.full((1,), -1, ctx=ctx) for ctx in self.contexts]
        meter = EpochMeter(hooks, epoch, progress_every)
        for iteration, (images, masks) in enumerate(batches, 1):
            if should_stop():
                return None
            losses = self.step(images, masks)
            for i, loss in enumerate(losses):
                batch_loss = loss.sum()
                totals[i] += batch_loss
                exploded = mx.nd.logical_or(mx.nd.contrib.isfinite(batch_loss) == 0, loss.max() > DIVERGED_LOSS)
                bad = mx.nd.logical_and(first_bad[i] < 0, exploded)
                first_bad[i] = mx.nd.where(bad, mx.nd.full((1,), iteration, ctx=batch_loss.context), first_bad[i])
            if meter.count(iteration, images.shape[0]):
                self._check_finite(first_bad, epoch)  # a sync point: the speed is real
                meter.progress(iteration, sum(total.asscalar() for total in totals), self.learning_rate)
        if should_stop():  # a stream ends its epoch early when told to stop
            return None
        self._check_finite(first_bad, epoch)
        return meter.result(sum(total.asscalar() for total in totals))

    @property
    def learning_rate(self) -> float:
        return float(self.trainer.learning_rate)

    def step(self, images: mx.nd.NDArray, masks: mx.nd.NDArray) -> list[mx.nd.NDArray]:
        """One optimizer update on a batch split over the devices; the per-sample losses of each device.

        Every device's objective is scaled by the whole batch's weighted count of labelled pixels (see
        loss.py), so the summed gradient is that of the whole batch, however it was split over devices and hosts.
        """
        count = mx.nd.sum(mx.nd.take(self.weights_cpu, masks.astype("float32")))  # masks are on the CPU
        if self.exchange is not None:
            count = mx.nd.array(self.exchange.allreduce("pixels", count.asnumpy()))
        scale = 1.0 / mx.nd.maximum(count, MIN_WEIGHT_SUM).reshape((1,))
        xs = gluon.utils.split_and_load(images, self.contexts, even_split=False)
        ys = gluon.utils.split_and_load(masks, self.contexts, even_split=False)
        # Copies between devices are all pushed before the first forward op: with SyncBatchNorm a device's
        # worker waits inside the network for its peers, and a copy queued behind it would never run.
        scales = [scale.as_in_context(x.context) for x in xs]
        with autograd.record():
            outputs = [
                self.loss(*self.net(normalize(x)), y.astype("float32"), s, w)
                for x, y, s, w in zip(xs, ys, scales, self.weights)
            ]
            objectives = [objective for objective, _ in outputs]
            if self.settings.mixed_precision:  # dynamic loss scaling (mxnet.contrib.amp), GPUs only
                with amp.scale_loss(objectives, self.trainer) as scaled:
                    autograd.backward(scaled)
        if not self.settings.mixed_precision:
            autograd.backward(objectives)
        self.trainer.step(self.settings.global_batch)
        return [per_sample for _, per_sample in outputs]

    @staticmethod
    def _check_finite(first_bad: list[mx.nd.NDArray], epoch: int) -> None:
        bad = [int(b.asscalar()) for b in first_bad]
        if max(bad) >= 0:
            raise Diverged(epoch, min(b for b in bad if b >= 0))

    def evaluate(self, batches: Iterable[tuple[mx.nd.NDArray, mx.nd.NDArray]], whole_images: bool) -> ConfusionMatrix:
        """Confusion matrix over all validation batches (of every host), accumulated on the devices and read once.

        Whole images run imperatively at their own size (GluonCV's upsampling sizes are resized in place);
        one above the pixel budget goes by sliding windows (semseg.measures.sliding), as the server predicts it.
        """
        classes = self.settings.num_classes
        counts = [mx.nd.zeros((classes * classes,), ctx=ctx, dtype="int64") for ctx in self.contexts]
        matrix = ConfusionMatrix(classes)
        windows = self._windows(self.contexts[0])
        if whole_images:
            self.net.hybridize(active=False)
        try:
            for images, masks in batches:
                if whole_images and not windows.fits(images.shape[1], images.shape[2]):
                    for image, mask in zip(images.asnumpy(), masks.asnumpy()):
                        matrix.add(mask, windows.classes(image), IGNORE)
                    continue
                if whole_images:
                    set_output_size(self.net, images.shape[1], images.shape[2])
                xs = gluon.utils.split_and_load(images, self.contexts, even_split=False)
                ys = gluon.utils.split_and_load(masks, self.contexts, even_split=False)
                for i, (x, y) in enumerate(zip(xs, ys)):
                    prediction = self.net(normalize(x))[0].argmax(axis=1)
                    label = y.astype("float32")
                    index = mx.nd.where(
                        label == IGNORE, mx.nd.full(label.shape, -1, ctx=label.context), label * classes + prediction
                    )
                    histogram, _ = mx.nd.histogram(index, bins=classes * classes, range=(0, classes * classes))
                    counts[i] += histogram
        finally:
            if whole_images:
                self._traced()
        for count in counts:
            matrix.add_counts(count.asnumpy())
        if self.exchange is None:
            return matrix
        total = ConfusionMatrix(classes)
        total.add_counts(self.exchange.sum_counts("confusion", matrix.matrix.reshape(-1)))
        return total

    def classes(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Class ids of a few images on the first device: crops of the training size through the traced network,
        other sizes imperatively (by windows above the pixel budget), as `evaluate` scores them."""
        ctx = self.contexts[0]
        crop = self.settings.crop_size
        if all(image.shape[:2] == (crop, crop) for image in images):
            batch = mx.nd.array(np.stack(images), ctx=ctx, dtype="uint8")
            return list(self.net(normalize(batch))[0].argmax(axis=1).asnumpy().astype(np.uint8))
        windows = self._windows(ctx)
        self.net.hybridize(active=False)
        try:
            return [windows.classes(image) for image in images]
        finally:
            self._traced()

    def _windows(self, ctx: mx.Context) -> SlidingWindows:
        return SlidingWindows(Scorer(self.net, ctx), self.settings.crop_size, self.settings.pixel_budget)

    def _traced(self) -> None:
        """Back to the training graph after imperative passes at other sizes."""
        set_output_size(self.net, self.settings.crop_size, self.settings.crop_size)
        self.net.hybridize(**HYBRIDIZE)
