"""What the log shows beyond the managed lines, on both engines: the engine line at start, the per-class IoU
table after each validation (its mean is the logged mIOU), and the time left on the progress lines' cadence."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        ("mxnet", r"Engine: MXNet 1\.9\.1 with GluonCV 0\.1\d\.\d+, on cpu\(0\)"),
        ("torch", r"Engine: PyTorch 2\.\d+\.\d+\S*, on 1 CPU process\(es\)"),
    ],
)
def test_engine_line_class_table_and_time_left(train_job, engine: str, line: str) -> None:
    run = train_job({"epochs": 2}, env={"SEMSEG_ENGINE": engine})
    assert run.code == 0, run.failure
    assert any(re.fullmatch(line, message) for message in run.messages), [m for m in run.messages if "Engine" in m]
    mious = run.metric("validation:mIOU")
    for epoch, miou in enumerate(mious):
        start = run.messages.index(f"Validation IoU per class, epoch {epoch} (mIOU {miou:.6f} is their mean):")
        assert run.messages[start + 1] == "  class  IoU     pixels"
        rows = [re.fullmatch(r"  +(\d+)  (\d\.\d{4})  +(\d+\.\d\d)%", m) for m in run.messages[start + 2 : start + 5]]
        assert all(rows), run.messages[start : start + 5]
        assert [int(r[1]) for r in rows if r] == [0, 1, 2]
        assert sum(float(r[2]) for r in rows if r) / 3 == pytest.approx(miou, abs=1e-4)
        assert sum(float(r[3]) for r in rows if r) == pytest.approx(100, abs=0.02)
    left = [m for m in run.messages if m.startswith("Time left: ")]
    assert len(left) == 4  # 2 iterations per epoch, a progress line each (SEMSEG_PROGRESS_EVERY=1)
    assert re.fullmatch(r"Time left: epoch 1 about 0:00:00, job about 0:00:00", left[-1])
    assert re.fullmatch(r"Time left: epoch 0 about \d:\d\d:\d\d, job about \d:\d\d:\d\d", left[0])
