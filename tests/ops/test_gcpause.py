"""The collector is off inside paused blocks and back on after the last one ends."""

from __future__ import annotations

import gc
import threading

import pytest

from forum.gcpause import gc_paused


@pytest.fixture(autouse=True)
def _collector_on() -> object:
    gc.enable()
    yield
    gc.enable()


def test_nested_blocks_resume_only_after_the_outermost() -> None:
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_exception_still_resumes_the_collector() -> None:
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_switched_off_elsewhere_stays_off() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_blocks_in_threads() -> None:
    """Thread A pauses, B pauses, A ends: still off until B ends too."""
    a_in, b_in, a_out, b_may_leave = (threading.Event() for _ in range(4))
    seen: dict[str, bool] = {}

    def a() -> None:
        with gc_paused():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b() -> None:
        a_in.wait(5)
        with gc_paused():
            b_in.set()
            a_out.wait(5)
            seen["after A left"] = gc.isenabled()
            b_may_leave.wait(5)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    a_out.wait(5)
    b_in.wait(5)
    b_may_leave.set()
    for t in threads:
        t.join(5)
    assert seen == {"after A left": False}
    assert gc.isenabled()
