"""The managed algorithm's metric and progress lines, exactly (CloudWatch and tuning jobs parse them).

#quality_metric. host: algo-1, epoch: 0, train loss: 1.475714725452465 .
#quality_metric. host: algo-1, epoch: 0, validation pixel_accuracy: 0.8472626958559429 .
#quality_metric. host: algo-1, epoch: 0, validation mIOU: 0.5063982026717044 .
#throughput_metric. host: algo-1, epoch: 0, train throughput: 55.04 samples/sec.
#progress_notice. epoch: 0, iterations: 20 speed: 55.57 samples/sec learning_rate: 0.000098
#progress_metric: host=algo-1, completed 10 % of epochs
"""

from __future__ import annotations

import logging

log = logging.getLogger("semseg.contract.report")

# Regexes for SageMaker MetricDefinitions / tuning; they match the lines above.
METRIC_REGEXES = {
    "train:loss": r"train loss: (\S+)",
    "validation:pixel_accuracy": r"validation pixel_accuracy: (\S+)",
    "validation:mIOU": r"validation mIOU: (\S+)",
    "train:throughput": r"train throughput: (\S+) samples/sec",
}


def quality_line(host: str, epoch: int, name: str, value: float) -> str:
    return f"#quality_metric. host: {host}, epoch: {epoch}, {name}: {float(value)!r} ."


def throughput_line(host: str, epoch: int, samples_per_sec: float) -> str:
    return f"#throughput_metric. host: {host}, epoch: {epoch}, train throughput: {samples_per_sec:.2f} samples/sec."


def progress_notice_line(epoch: int, iterations: int, samples_per_sec: float, learning_rate: float) -> str:
    return (
        f"#progress_notice. epoch: {epoch}, iterations: {iterations} speed: {samples_per_sec:.2f} samples/sec "
        f"learning_rate: {learning_rate:.6f}"
    )


def progress_metric_line(host: str, completed_epochs: int, epochs: int) -> str:
    return f"#progress_metric: host={host}, completed {100 * completed_epochs // epochs} % of epochs"


class Reporter:
    """Writes the lines for one host to the log (not `enabled`: the other processes of a multi-GPU job)."""

    def __init__(self, host: str, epochs: int, *, enabled: bool = True) -> None:
        self.host = host
        self.epochs = epochs
        self.enabled = enabled

    def progress(self, epoch: int, iterations: int, samples_per_sec: float, learning_rate: float) -> None:
        if self.enabled:
            log.info("%s", progress_notice_line(epoch, iterations, samples_per_sec, learning_rate))

    def epoch_end(self, epoch: int, train_loss: float, throughput: float, pixel_accuracy: float, miou: float) -> None:
        if not self.enabled:
            return
        log.info("%s", quality_line(self.host, epoch, "train loss", train_loss))
        log.info("%s", throughput_line(self.host, epoch, throughput))
        log.info("%s", quality_line(self.host, epoch, "validation pixel_accuracy", pixel_accuracy))
        log.info("%s", quality_line(self.host, epoch, "validation mIOU", miou))
        log.info("%s", progress_metric_line(self.host, epoch + 1, self.epochs))
