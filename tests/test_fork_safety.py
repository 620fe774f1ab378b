"""A process forked after using a model can use models: mutation testing (mutmut) and pre-fork
servers fork from a process that has already run batches through the shared worker pool."""

from __future__ import annotations

import os
import signal
import sys

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
