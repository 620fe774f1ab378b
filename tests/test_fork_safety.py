"""A process forked after using a model can use models: mutation testing (mutmut) and pre-fork
servers fork from a process that has already run batches through the shared worker pool."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time

import numpy as np
import pytest

import vaegen_infer as vi
from vaegen_infer import runners

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs os.fork")


def _in_child(work, timeout_s: int = 60) -> bytes:
    """Run `work() -> bytes` in a forked child; return its bytes, fail if it hangs or raises."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        os.close(read_fd)
        code = 1
        try:
            signal.alarm(timeout_s)  # a child stuck on the parent's dead worker threads dies here
            data = work()
            with os.fdopen(write_fd, "wb") as f:
                f.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child killed by signal {os.WTERMSIG(status)} (hung on a dead worker pool?)"
    assert os.WEXITSTATUS(status) == 0, "child failed"
    return data


def test_a_forked_child_decodes_with_the_parents_model_and_a_new_one() -> None:
    g = vi.load("mnist-vae", threads=2, parallel="batch")
    z = g.sample_latents(256, seed=0)  # 256 rows >= 2 chunks of 32: split over the worker pool
    want = g.decode(z)
    assert runners._workers is not None  # the parent's pool exists and has run work

    def work() -> bytes:
        assert runners._workers is None  # the child starts without the parent's (thread-less) pool
        same = g.decode(z)
        fresh = vi.load("mnist-vae", threads=2, parallel="batch").decode(z)
        return np.stack([same, fresh]).tobytes()

    got = np.frombuffer(_in_child(work), np.float32).reshape(2, *want.shape)
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], want)
    assert g.decode(z[:64]).shape == (64, *g.image_shape)  # and the parent's pool still works


def test_a_forked_child_can_drop_an_inherited_model_whose_session_has_a_thread_pool() -> None:
    # An idle ONNX Runtime pool's threads wait on a condition variable; in a child they are gone but
    # still counted as its waiters, so destroying the inherited session used to block forever (found by
    # mutation testing: mutmut forks every mutant from a process that has run the whole suite).
    from vaegen_infer import providers

    held = [vi.load("mnist-vae", threads=2)]
    z = held[0].sample_latents(8, seed=0)  # under two chunks: the small-batch session, 2 intra-op threads
    want = held[0].decode(z)
    small = held[0]._runner("decoder").small_batch_session()
    assert small.get_session_options().intra_op_num_threads == 2
    time.sleep(0.5)  # long enough for the pool's threads to stop spinning and park

    def work() -> bytes:
        assert small in providers._inherited_sessions  # pinned at the fork
        again = held[0].decode(z)  # an inherited multi-threaded session still runs
        held.clear()
        gc.collect()  # the model and its runners are freed here; their sessions are not
        return again.tobytes()

    got = np.frombuffer(_in_child(work, timeout_s=30), np.float32).reshape(want.shape)
    np.testing.assert_array_equal(got, want)
    assert providers._inherited_sessions == []  # the parent pins nothing
