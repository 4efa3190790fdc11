"""The metric lines parse with the contract's regexes and look exactly like the managed ones."""

from __future__ import annotations

import re

from semseg.contract.report import (
    METRIC_REGEXES,
    progress_metric_line,
    progress_notice_line,
    quality_line,
    throughput_line,
)


def test_lines_match_the_managed_format_exactly() -> None:
    assert quality_line("algo-1", 0, "train loss", 1.475714725452465) == (
        "#quality_metric. host: algo-1, epoch: 0, train loss: 1.475714725452465 ."
    )
    assert quality_line("algo-1", 0, "validation mIOU", 0.5063982026717044) == (
        "#quality_metric. host: algo-1, epoch: 0, validation mIOU: 0.5063982026717044 ."
    )
    assert throughput_line("algo-1", 0, 55.04) == (
        "#throughput_metric. host: algo-1, epoch: 0, train throughput: 55.04 samples/sec."
    )
    assert progress_notice_line(0, 20, 55.57, 0.000098) == (
        "#progress_notice. epoch: 0, iterations: 20 speed: 55.57 samples/sec learning_rate: 0.000098"
    )
    assert progress_metric_line("algo-1", 1, 10) == "#progress_metric: host=algo-1, completed 10 % of epochs"


def test_contract_regexes_extract_the_values() -> None:
    lines = "\n".join(
        [
            quality_line("algo-1-x7k2q", 3, "train loss", 0.25),
            quality_line("algo-1-x7k2q", 3, "validation pixel_accuracy", 0.9),
            quality_line("algo-1-x7k2q", 3, "validation mIOU", 0.75),
            throughput_line("algo-1-x7k2q", 3, 12.5),
        ]
    )
    found = {name: re.findall(regex, lines) for name, regex in METRIC_REGEXES.items()}
    assert found == {
        "train:loss": ["0.25"],
        "validation:pixel_accuracy": ["0.9"],
        "validation:mIOU": ["0.75"],
        "train:throughput": ["12.50"],
    }
