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
