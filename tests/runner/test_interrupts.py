"""Deferred SIGINT/SIGTERM: a flag, never an exception inside library code."""

from __future__ import annotations

import os
import signal

import pytest

from explorer.runner.interrupts import Interrupted, Interrupts


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_sets_the_flag_and_raises_nothing(sig):
    with Interrupts() as stop:
        assert not stop.requested
        os.kill(os.getpid(), sig)          # delivered at the next bytecode boundary: no exception
        total = sum(range(1000))           # library code runs on undisturbed
        assert total == 499500
        assert stop.requested and not stop.forced
        assert stop.name == signal.Signals(sig).name
        with pytest.raises(Interrupted):
            stop.check()
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(10))
        assert stop.forced


def test_previous_handlers_come_back():
    before = signal.getsignal(signal.SIGINT)
    with Interrupts():
        assert signal.getsignal(signal.SIGINT) != before
    assert signal.getsignal(signal.SIGINT) == before
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(10))


def test_install_takes_the_signal_back_from_a_library():
    before = signal.getsignal(signal.SIGTERM)
    with Interrupts() as stop:
        signal.signal(signal.SIGTERM, lambda *a: None)      # e.g. ray.init's own SIGTERM handler
        stop.install()
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(10))
        assert stop.requested
    assert signal.getsignal(signal.SIGTERM) == before      # the handler from before the first install
