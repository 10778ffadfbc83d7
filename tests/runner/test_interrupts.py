"""Deferred SIGINT/SIGTERM: a flag, never an exception inside library code.

Signals are raised with `signal.raise_signal` (in this thread, handled before the next bytecode):
`os.kill` to our own pid may be taken by another thread (Ray, gRPC) and handled later, at random."""

from __future__ import annotations

import signal

import pytest

from explorer.runner.interrupts import Interrupted, Interrupts


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_sets_the_flag_and_raises_nothing(sig):
    with Interrupts(echo_s=0.0) as stop:
        assert not stop.requested
        signal.raise_signal(sig)          # delivered at the next bytecode boundary: no exception
        total = sum(range(1000))           # library code runs on undisturbed
        assert total == 499500
        assert stop.requested and not stop.forced
        assert stop.name == signal.Signals(sig).name
        with pytest.raises(Interrupted):
            stop.check()
        signal.raise_signal(signal.SIGINT)
        sum(range(10))
        assert stop.forced


def test_previous_handlers_come_back():
    # start from Python's own SIGINT handler, whatever earlier tests (Ray) left installed
    suite = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with Interrupts():
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
            sum(range(10))
    finally:
        signal.signal(signal.SIGINT, suite)


def test_install_takes_the_signal_back_from_a_library():
    before = signal.getsignal(signal.SIGTERM)
    with Interrupts() as stop:
        signal.signal(signal.SIGTERM, lambda *a: None)      # e.g. ray.init's own SIGTERM handler
        stop.install()
        signal.raise_signal(signal.SIGTERM)
        sum(range(10))
        assert stop.requested
    assert signal.getsignal(signal.SIGTERM) == before      # the handler from before the first install


def test_the_same_signal_twice_at_once_is_one_request_and_later_it_forces():
    clock = [100.0]
    with Interrupts(echo_s=1.0, clock=lambda: clock[0]) as stop:
        signal.raise_signal(signal.SIGTERM)    # SLURM signals the driver ...
        signal.raise_signal(signal.SIGTERM)    # ... and its batch shell forwards the same signal
        sum(range(10))
        assert stop.requested and not stop.forced and stop.name == "SIGTERM"
        clock[0] += 0.5
        signal.raise_signal(signal.SIGINT)     # another signal is a second request, however soon
        sum(range(10))
        assert stop.forced


def test_the_same_signal_after_the_echo_window_forces():
    clock = [100.0]
    with Interrupts(echo_s=1.0, clock=lambda: clock[0]) as stop:
        signal.raise_signal(signal.SIGTERM)
        sum(range(10))
        clock[0] += 1.5
        signal.raise_signal(signal.SIGTERM)
        sum(range(10))
        assert stop.forced
