"""The pause of Python's cycle collector around questions that build large answers."""

from __future__ import annotations

import gc
import threading

import pytest

from kb.cycles import paused_cycle_collection


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_inside_and_resumed_after():
    with paused_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_resumed_after_an_error():
    with pytest.raises(ValueError), paused_cycle_collection():
        raise ValueError("a question that fails")
    assert gc.isenabled()


def test_a_decorated_question_runs_paused():
    @paused_cycle_collection()
    def question() -> bool:
        return gc.isenabled()

    assert question() is False
    assert gc.isenabled()


def test_nested_pauses_resume_at_the_last_end():
    with paused_cycle_collection():
        with paused_cycle_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_turned_off_before_stays_off():
    gc.disable()
    with paused_cycle_collection():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_concurrent_questions_resume_when_the_last_ends():
    first_in, second_done, first_may_end = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with paused_cycle_collection():
            first_in.set()
            first_may_end.wait(10)
            seen["first, at its end"] = gc.isenabled()

    def second() -> None:
        first_in.wait(10)
        with paused_cycle_collection():
            pass
        seen["after the second ended"] = gc.isenabled()
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    second_done.wait(10)
    first_may_end.set()
    for t in threads:
        t.join(10)
    # the second ended while the first still ran: the collector stayed paused for the first
    assert seen == {"after the second ended": False, "first, at its end": False}
    assert gc.isenabled()
