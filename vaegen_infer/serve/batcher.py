"""Dynamic batching for one graph: gather small requests, run them as one call, split the result.

Plain threads and numpy; nothing here knows about HTTP, so any front door (the FastAPI app, a
Triton Python model, a queue consumer) can put a `Batcher` in front of `Model.decode` or
`Model.encode`. Each request carries its own rows, already drawn from its own seed, so what else
shares a batch changes its result only by float32 rounding, never by a different random draw.

Two ways in: `submit` (any thread; a concurrent.futures.Future) and `submit_async` (a coroutine on
an asyncio event loop). The worker answers the second kind with one `call_soon_threadsafe` per
batch and event loop, not one per request: a thread wake-up and a future chain per request cost
the event loop more than a small decode (measured: benchmarks/results/serve_profile.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

Outputs = np.ndarray | tuple[np.ndarray, ...]


class QueueFull(Exception):
    """The batcher's bounded queue is full: the caller should retry later (HTTP 503)."""

    def __init__(self, name: str, size: int) -> None:
        super().__init__(f"the queue for {name} is full ({size} requests waiting); retry in a moment")
        self.name = name
        self.size = size


_STOP = object()  # queued by close(): everything before it is still served


class Closed(Exception):
    """The batcher is shutting down and takes no new requests."""


@dataclass
class _Item:
    rows: np.ndarray  # (n_i, ...) this request's inputs
    future: Future | None = None  # submit(): resolves to this request's outputs, (n_i, ...) each
    waiter: asyncio.Future | None = None  # submit_async(): the same, on its event loop

    def start(self) -> bool:
        """Mark the request running; False if its caller has given up (cancelled) meanwhile."""
        if self.future is not None:
            return self.future.set_running_or_notify_cancel()
        # Read from the worker thread: a cancel that races this read only costs a wasted row.
        return self.waiter is not None and not self.waiter.cancelled()


def _deliver(answers: list[tuple[asyncio.Future, Outputs | None, BaseException | None]]) -> None:
    """On the event loop: hand a batch's outputs (or its failure) to each waiting request."""
    for waiter, out, exc in answers:
        if waiter.done():  # cancelled while the batch ran
            continue
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(out)


class Batcher:
    """One worker thread and one bounded queue in front of `fn`, a function of a batch (N, ...)
    returning an array (N, ...) or a tuple of them.

    `window_s`: after the first request arrives, wait at most this long for more (0: run every
    request alone, no batching). `max_batch`: stop gathering at this many rows; a request larger
    than that runs on its own (`fn` may chunk it). `max_queue`: requests waiting; `submit` raises
    `QueueFull` beyond it, never building an unbounded backlog. `on_batch(rows, requests, seconds)`
    is called after every call of `fn` (metrics).
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], Outputs],
        name: str,
        window_s: float,
        max_batch: int,
        max_queue: int,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        if window_s < 0 or max_batch < 1 or max_queue < 1:
            raise ValueError(f"bad batcher limits: window {window_s}, max_batch {max_batch}, max_queue {max_queue}")
        self.fn = fn
        self.name = name
        self.window_s = float(window_s)
        self.max_batch = int(max_batch)
        self.max_queue = int(max_queue)
        self.on_batch = on_batch
        self._queue: queue.Queue[_Item | object] = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self._carry: _Item | None = None  # taken from the queue but did not fit the last batch
        # While gathering, the worker sleeps through the window instead of waking for every request
        # (a thread wake-up per request costs more than a small decode); `_enough` ends the sleep
        # early once the rows waiting fill the batch. `_waiting` counts rows in the queue.
        self._count = threading.Lock()
        self._waiting = 0
        self._need = max_batch + 1  # rows that would fill the batch being gathered (none: never)
        self._enough = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        """Requests waiting (not yet in a running batch)."""
        return self._queue.qsize() + (self._carry is not None)

    def submit(self, rows: np.ndarray) -> Future:
        """Queue one request's rows (n, ...); the future resolves to its own slice of the outputs."""
        item = _Item(rows, future=Future())
        self._put(item)
        assert item.future is not None
        return item.future

    async def submit_async(self, rows: np.ndarray) -> Outputs:
        """Queue one request's rows (n, ...) from a coroutine and wait for its slice of the outputs.
        Raises QueueFull or Closed at once, like `submit`."""
        item = _Item(rows, waiter=asyncio.get_running_loop().create_future())
        self._put(item)
        assert item.waiter is not None
        return await item.waiter

    def _put(self, item: _Item) -> None:
        rows = item.rows
        if self._closed.is_set():
            raise Closed(f"{self.name} is shutting down")
        if rows.ndim < 1 or rows.shape[0] < 1:
            raise ValueError(f"a request needs at least one row, got shape {rows.shape}")
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise QueueFull(self.name, self.max_queue) from None
        with self._count:
            self._waiting += len(rows)
            if self._waiting >= self._need:
                self._enough.set()

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests, finish every queued one, then stop the worker."""
        if not self._closed.is_set():
            self._closed.set()
            self._queue.put(_STOP)  # waits for room; wakes the worker, which serves what came before
        self._thread.join(timeout)

    # -- the worker ---------------------------------------------------------------------------
    def _take(self, block: bool) -> _Item | object | None:
        """The carried-over request, else the next in the queue (blocking or not): an _Item, _STOP
        (close() was called; everything queued before it has been taken), or None (empty)."""
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        try:
            item = self._queue.get() if block else self._queue.get_nowait()
        except queue.Empty:
            return None
        if isinstance(item, _Item):
            with self._count:
                self._waiting -= len(item.rows)
        return item

    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._take(block=True)
            if not isinstance(first, _Item):  # _STOP with nothing queued before it
                break
            batch = [first]
            rows = len(first.rows)
            if self.window_s > 0 and rows < self.max_batch:
                with self._count:
                    self._need = self.max_batch - rows
                    if self._waiting >= self._need:
                        self._enough.set()
                self._enough.wait(self.window_s)  # one wake-up per batch, not one per request
                with self._count:
                    self._need = self.max_batch + 1
                    self._enough.clear()
                while rows < self.max_batch:
                    item = self._take(block=False)
                    if item is None:
                        break
                    if not isinstance(item, _Item):
                        stop = True  # drained: this is the last batch
                        break
                    if rows + len(item.rows) > self.max_batch or item.rows.shape[1:] != first.rows.shape[1:]:
                        self._carry = item  # starts the next batch
                        break
                    batch.append(item)
                    rows += len(item.rows)
            self._run(batch)
        # A request that raced past close()'s check lands after _STOP: fail it rather than hang it.
        while True:
            try:
                late = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(late, _Item) and late.start():
                self._answer([late], [None], Closed(f"{self.name} is shutting down"))

    def _run(self, batch: Sequence[_Item]) -> None:
        started = time.perf_counter()
        live = [it for it in batch if it.start()]
        if not live:
            return
        try:
            x = live[0].rows if len(live) == 1 else np.concatenate([it.rows for it in live])
            out = self.fn(x)
        except BaseException as exc:  # every request of the batch gets the failure, none hangs
            self._answer(live, [None] * len(live), exc)
            return
        parts: list[Outputs | None] = []
        start = 0
        for it in live:
            n = len(it.rows)
            parts.append(tuple(o[start : start + n] for o in out) if isinstance(out, tuple) else out[start : start + n])
            start += n
        self._answer(live, parts, None)
        if self.on_batch is not None:
            self.on_batch(start, len(live), time.perf_counter() - started)

    @staticmethod
    def _answer(items: Sequence[_Item], parts: Sequence[Outputs | None], exc: BaseException | None) -> None:
        """Each item its part of the outputs (or `exc`): thread callers' futures directly, event-loop
        callers with one call_soon_threadsafe per loop for the whole batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Outputs | None, BaseException | None]]]
        by_loop = {}
        for it, part in zip(items, parts):
            if it.future is not None:
                if exc is not None:
                    it.future.set_exception(exc)
                else:
                    it.future.set_result(part)
            elif it.waiter is not None:
                by_loop.setdefault(it.waiter.get_loop(), []).append((it.waiter, part, exc))
        for loop, answers in by_loop.items():
            # RuntimeError: the loop is closed, so no coroutine is left to wait for these answers.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, answers)
