"""The GIL is released while the model runs, and Ctrl-C still reaches a long call."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from gemma_graph import Model

DOC = "Knead the dough for ten minutes, then let it rise in a warm place until doubled. " * 12


@pytest.fixture(scope="module")
def one_thread() -> Model:
    # One thread per call: two Python threads then use two cores only if the GIL is free.
    return Model(threads=1)


def test_python_runs_while_the_model_embeds(one_thread: Model) -> None:
    ticks = 0
    done = threading.Event()

    def embed() -> None:
        one_thread.encode([DOC] * 16)
        done.set()

    worker = threading.Thread(target=embed)
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    # With the GIL held for the whole call this loop would run a handful of times at most.
    assert ticks > 50, ticks


def test_two_threads_embed_at_the_same_time(one_thread: Model) -> None:
    # A long call (16 texts) starts; a short one (1 text) starts while it runs. With the GIL
    # released, the short call finishes first; held, it could not even start before the long
    # one returned. Both calls' work scales alike with the machine's speed and load, so the
    # order holds however busy the machine is (a wall-clock speed-up, checked here before, did
    # not: it failed in CI while a compile took a core). Vectors are those of a call alone.
    long_texts, short_texts = [DOC] * 16, [DOC]
    long_ref, short_ref = one_thread.encode(long_texts), one_thread.encode(short_texts)
    inside = threading.Event()
    ended = {}
    results = {}

    def long_call() -> None:
        inside.set()
        results["long"] = one_thread.encode(long_texts)
        ended["long"] = time.perf_counter()

    def short_call() -> None:
        inside.wait()
        time.sleep(0.05)  # the long call is in the model by now
        results["short"] = one_thread.encode(short_texts)
        ended["short"] = time.perf_counter()

    threads = [threading.Thread(target=long_call), threading.Thread(target=short_call)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert ended["short"] < ended["long"], "the short call waited for the long one: the GIL was held"
    assert np.array_equal(results["long"], long_ref) and np.array_equal(results["short"], short_ref)


def test_ctrl_c_interrupts_a_long_call(one_thread: Model) -> None:
    # A real SIGINT, as a terminal's Ctrl-C sends, 0.5 s into a call of minutes. Our own Python
    # handler (the path is the same as Python's default one: the C handler trips a flag, the
    # waiting call finds it with PyErr_CheckSignals) so that a signal arriving after the call
    # cannot abort the test session, and so that nothing imported earlier can have replaced it.
    # Ctrl-C is pressed again every 8 s: an interrupt that got lost fails the bound below in
    # seconds instead of leaving the call running for half an hour.
    calling = threading.Event()
    pressed: list = []

    def on_sigint(signum, frame) -> None:
        if calling.is_set():
            raise KeyboardInterrupt

    def press_ctrl_c() -> None:
        while calling.wait(1) and not done.wait(0.5 if not pressed else 8):
            pressed.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)

    done = threading.Event()
    previous = signal.signal(signal.SIGINT, on_sigint)
    presser = threading.Thread(target=press_ctrl_c)
    try:
        calling.set()
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            # Minutes of work; cancelling waits for the pass in progress, here two texts.
            one_thread.encode([DOC] * 2000, batch_size=2)
        calling.clear()
        stopped = time.perf_counter()
    finally:
        calling.clear()
        done.set()
        presser.join()
        signal.signal(signal.SIGINT, previous)
    assert len(pressed) >= 1
    assert len(pressed) == 1, f"the first Ctrl-C was lost; the call stopped after press {len(pressed)}"
    assert stopped - pressed[0] < 5
    # The model is usable afterwards.
    assert one_thread.encode("still here").shape == (768,)
