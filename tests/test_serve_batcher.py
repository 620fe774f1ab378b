"""The dynamic batcher on its own: plain threads and numpy, no HTTP, no fastapi needed."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import vaegen_infer as vi
from vaegen_infer.serve.batched import BatchedModel
from vaegen_infer.serve.batcher import Batcher, Closed, QueueFull


class Recorder:
    """fn(x) = 2x, recording the batch sizes it was called with."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.hold = hold

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.hold is not None:
            self.hold.wait(10)
        self.sizes.append(len(x))
        return 2 * x


def test_concurrent_requests_share_one_call_and_get_their_own_rows() -> None:
    fn = Recorder()
    b = Batcher(fn, "t", window_s=0.2, max_batch=1000, max_queue=100)
    try:
        futures = [b.submit(np.full((k, 3), k, np.float32)) for k in (1, 2, 3, 4)]
        outs = [f.result(5) for f in futures]
    finally:
        b.close()
    assert fn.sizes == [10]
    for k, out in zip((1, 2, 3, 4), outs):
        np.testing.assert_array_equal(out, np.full((k, 3), 2 * k, np.float32))


def test_max_batch_splits_and_window_zero_runs_each_alone() -> None:
    fn = Recorder()
    b = Batcher(fn, "t", window_s=0.2, max_batch=5, max_queue=100)
    futures = [b.submit(np.ones((2, 1), np.float32)) for _ in range(5)]
    [f.result(5) for f in futures]
    b.close()
    assert fn.sizes == [4, 4, 2]  # 2 + 2 fit, a third would make 6 > 5
    fn = Recorder()
    b = Batcher(fn, "t", window_s=0, max_batch=256, max_queue=100)
    futures = [b.submit(np.ones((1, 1), np.float32)) for _ in range(6)]
    [f.result(5) for f in futures]
    b.close()
    assert fn.sizes == [1] * 6


def test_tuple_outputs_are_split_too() -> None:
    b = Batcher(lambda x: (x + 1, x * 10), "t", window_s=0.1, max_batch=100, max_queue=10)
    f1, f2 = b.submit(np.zeros((1, 2), np.float32)), b.submit(np.ones((2, 2), np.float32))
    (a1, b1), (a2, b2) = f1.result(5), f2.result(5)
    np.testing.assert_array_equal(b1, np.zeros((1, 2)))
    b.close()
    assert a1.shape == (1, 2) and a2.shape == (2, 2)
    np.testing.assert_array_equal(b2, np.full((2, 2), 10.0))


def test_a_failure_reaches_every_request_of_the_batch_and_the_worker_lives_on() -> None:
    calls = []

    def fn(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return x

    b = Batcher(fn, "t", window_s=0.1, max_batch=100, max_queue=10)
    futures = [b.submit(np.zeros((1, 1), np.float32)) for _ in range(3)]
    for f in futures:
        with pytest.raises(RuntimeError, match="boom"):
            f.result(5)
    assert b.submit(np.zeros((1, 1), np.float32)).result(5).shape == (1, 1)
    b.close()


def test_the_queue_is_bounded_and_close_drains_it() -> None:
    hold = threading.Event()
    fn = Recorder(hold)
    b = Batcher(fn, "t", window_s=0, max_batch=10, max_queue=3)
    first = b.submit(np.zeros((1, 1), np.float32))
    time.sleep(0.1)  # the worker is now inside fn with the first request
    queued = [b.submit(np.zeros((1, 1), np.float32)) for _ in range(3)]
    assert b.depth() == 3
    with pytest.raises(QueueFull, match="full"):
        b.submit(np.zeros((1, 1), np.float32))
    closer = threading.Thread(target=b.close)
    closer.start()
    time.sleep(0.05)
    with pytest.raises(Closed):
        b.submit(np.zeros((1, 1), np.float32))
    hold.set()
    closer.join(5)
    assert not closer.is_alive()
    assert first.result(0).shape == (1, 1) and all(f.result(0).shape == (1, 1) for f in queued)
    assert fn.sizes == [1, 1, 1, 1]


def test_batched_model_runs_the_library_operations_to_float32_rounding() -> None:
    g = vi.load("mnist-vae", providers="cpu")
    dec = Batcher(g.decode, "dec", window_s=0.05, max_batch=4096, max_queue=100)
    enc = Batcher(g.encode, "enc", window_s=0.05, max_batch=4096, max_queue=100)
    bm = BatchedModel(g, dec, enc)
    try:
        with ThreadPoolExecutor(6) as pool:
            samples = list(pool.map(lambda s: bm.sample(3, seed=s), range(6)))
        for s, x in enumerate(samples):
            np.testing.assert_allclose(x, g.sample(3, seed=s), atol=1e-6, rtol=0)
        a, b = g.sample(2, seed=0)
        np.testing.assert_allclose(bm.interpolate(a, b, steps=5), g.interpolate(a, b, steps=5), atol=1e-6)
        np.testing.assert_allclose(bm.traverse(a, dims=[1], steps=3), g.traverse(a, dims=[1], steps=3), atol=1e-6)
        assert bm.latent_dim == g.latent_dim and bm.manifest is g.manifest
    finally:
        dec.close()
        enc.close()


# -- the event-loop way in (submit_async), as the HTTP app uses it ---------------------------------


def test_event_loop_callers_share_one_call_and_get_their_own_rows() -> None:
    fn = Recorder()
    b = Batcher(fn, "t", window_s=0.2, max_batch=1000, max_queue=100)
    xs = [np.full((1 + i % 3, 2), i, np.float32) for i in range(10)]

    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(b.submit_async(x) for x in xs))

    outs = asyncio.run(main())
    b.close(5)
    for x, y in zip(xs, outs):
        np.testing.assert_array_equal(y, 2 * x)
    assert fn.sizes == [sum(len(x) for x in xs)]  # all ten in one call


def test_thread_and_event_loop_callers_in_one_batch() -> None:
    fn = Recorder()
    b = Batcher(lambda x: (fn(x), x + 1), "t", window_s=0.3, max_batch=1000, max_queue=100)
    from_thread = b.submit(np.ones((2, 1), np.float32))

    async def main() -> tuple[np.ndarray, np.ndarray]:
        return await b.submit_async(np.full((3, 1), 5, np.float32))

    doubled, plus_one = asyncio.run(main())
    b.close(5)
    np.testing.assert_array_equal(doubled, np.full((3, 1), 10))
    np.testing.assert_array_equal(plus_one, np.full((3, 1), 6))
    np.testing.assert_array_equal(from_thread.result(0)[0], np.full((2, 1), 2))
    assert fn.sizes == [5]


def test_event_loop_callers_get_the_failure_and_a_cancelled_one_is_skipped() -> None:
    hold = threading.Event()
    calls: list[int] = []

    def fn(x: np.ndarray) -> np.ndarray:
        hold.wait(10)
        calls.append(len(x))
        if len(x) > 1:
            raise RuntimeError("boom")
        return x

    b = Batcher(fn, "t", window_s=0, max_batch=100, max_queue=10)

    async def main() -> tuple[list[BaseException | np.ndarray], bool]:
        first = asyncio.ensure_future(b.submit_async(np.zeros((1, 1), np.float32)))  # runs alone, held
        await asyncio.sleep(0.1)
        gone = asyncio.ensure_future(b.submit_async(np.zeros((1, 1), np.float32)))
        failing = asyncio.ensure_future(b.submit_async(np.zeros((2, 1), np.float32)))
        await asyncio.sleep(0.05)
        gone.cancel()  # its caller gave up while it waited in the queue
        hold.set()
        results = await asyncio.gather(first, failing, return_exceptions=True)
        return results, gone.cancelled()

    (ok, failed), cancelled = asyncio.run(main())
    b.close(5)
    assert isinstance(ok, np.ndarray) and ok.shape == (1, 1)
    assert isinstance(failed, RuntimeError) and "boom" in str(failed)
    assert cancelled and calls == [1, 2]  # the cancelled request never reached fn
    with pytest.raises(Closed):
        asyncio.run(b.submit_async(np.zeros((1, 1), np.float32)))
