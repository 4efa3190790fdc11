from __future__ import annotations

import os
import signal

import pytest

from semseg.contract.signals import StopFlag


def test_first_signal_sets_the_flag_second_stops_at_once() -> None:
    stop = StopFlag()
    assert not stop()
    with stop.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_previous_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopFlag().installed():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_calls_at_once_with_it() -> None:
    ended: list[int] = []
    stop = StopFlag(at_once=ended.append)
    with stop.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        assert not ended
        with pytest.raises(KeyboardInterrupt):  # where at_once returns (it ends the process in the CLI)
            os.kill(os.getpid(), signal.SIGTERM)
    assert ended == [signal.SIGTERM]
