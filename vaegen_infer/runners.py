"""How one graph's session is run, by provider.

- CPU: `session.run` on numpy arrays. The output arrays ONNX Runtime returns are used as they are.
- CPU, batch-parallel (`SplitRunner`): one single-threaded session; a large batch is cut into
  chunks that threads take one after another, computing at once, on one process-wide pool of
  worker threads shared by every session. Chosen over ONNX Runtime's intra-op threads by
  measurement (see providers.session_options).
- CUDA: I/O binding. Host arrays are copied to the device once, outputs are allocated on the
  device and copied back once; `run_device` takes and returns `onnxruntime.OrtValue`s that stay
  on the GPU, so an application can chain graphs (or feed a GPU pipeline) without host copies.
- CUDA graphs: ONNX Runtime captures a session's kernel launches on its first run and replays
  them afterwards, which removes per-kernel launch overhead at small batches. A captured graph
  has fixed shapes and fixed device addresses, so each batch size gets its own session, its own
  input and output buffers on the device, and its own graph; new inputs are copied into the
  captured input buffer (`OrtValue.update_inplace`).

None of the CUDA code has run on a GPU: this project's machines have none. It is exercised by the
tests with fake sessions that record the bindings (tests/test_cuda_path.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import UsageError
from .providers import MIN_ROWS_PER_PART, ProviderRequest, planned_provider, split_parts

if TYPE_CHECKING:  # imported when first needed: 5 ms of every `vaegen-infer` start otherwise
    from concurrent.futures import ThreadPoolExecutor

# A process that uses many batch sizes in CUDA-graph mode would build a session per size; past
# this many the mode is being misused (pad requests to a few fixed sizes instead).
MAX_CUDA_GRAPHS = 16


class Runner(Protocol):
    """How `Model` runs one graph, whatever the provider: it asks for a runner and never branches."""

    provider: str  # "cpu" or "cuda": what really runs the graph

    @property
    def session(self) -> Any:
        """The graph's main ONNX Runtime session (created on first access where it is lazy)."""
        ...

    def session_for(self, rows: int) -> Any:
        """The session a batch of `rows` runs on."""
        ...

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Numpy in, numpy out: the named outputs for one input batch."""
        ...

    def run_device(self, outputs: Sequence[str], feeds: Mapping[str, Any]) -> list[Any]:
        """OrtValues on the device in and out (CUDA only)."""
        ...


# Makes one session of the graph: (small_batch) -> (session, the provider really running it).
SessionFactory = Callable[[bool], tuple[Any, str]]


def direct_run(session: Any) -> Callable[[list[str], Mapping[str, np.ndarray]], list[np.ndarray]]:
    """`(output names, feeds) -> outputs` of a CPU session with the least per-call cost.

    `InferenceSession.run` is a Python wrapper that re-validates the feed names on every call and
    then calls the compiled session (`session._sess.run`). Model's input checks already ensure the
    names, so the runners call the compiled session directly: 0.8 us less per call, measured on an
    Identity graph (3.5 -> 2.7 us of thread CPU time). I/O binding (bind input, bind a fresh output,
    run: 8.0 us) and `run_with_ort_values` (wrapping the numpy input in an OrtValue: 34 us) cost
    more than they save at batch 1 on the CPU, so they are not used here. Sessions without the
    compiled attribute (tests' fakes, other ONNX Runtime builds) keep `session.run`."""
    compiled = getattr(session, "_sess", None)
    run = getattr(compiled, "run", None)
    if run is None or not callable(run):
        return lambda names, feeds: session.run(names, feeds)
    return lambda names, feeds: run(names, feeds, None)


class _Lazy:
    """A session made on first use, once, under a lock (first use may come from many threads),
    and its cheapest way to run (`direct_run`)."""

    def __init__(self, session: Any, make: Callable[[], Any] | None) -> None:
        if session is None and make is None:
            raise ValueError("give a session or a way to make one")
        self._value = session
        self._make = make
        self._lock = threading.Lock()
        self._run: Callable[[list[str], Mapping[str, np.ndarray]], list[np.ndarray]] | None = None

    def get(self) -> Any:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._make()  # type: ignore[misc]
        return self._value

    def run(self, names: list[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        fast = self._run
        if fast is None:
            fast = self._run = direct_run(self.get())
        return fast(names, feeds)


class SessionRunner:
    """CPU: plain `session.run`. The session may be made on first use (`make_session`)."""

    provider = "cpu"

    def __init__(self, session: Any = None, make_session: Callable[[], Any] | None = None) -> None:
        self._main = _Lazy(session, make_session)

    @property
    def session(self) -> Any:
        return self._main.get()

    def session_for(self, rows: int) -> Any:
        """The session a batch of `rows` runs on."""
        return self.session

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._main.run(outputs if type(outputs) is list else list(outputs), feeds)

    def run_device(self, outputs: Sequence[str], feeds: Mapping[str, Any]) -> list[Any]:
        raise UsageError("device-resident inputs need the CUDA provider; this model runs on the CPU")


# One pool of worker threads for the whole process, shared by every SplitRunner (the encoder and
# decoder of a model, and every model loaded): at most `cores - 1` workers plus the calling
# thread compute at once, whatever the number of sessions. Grown, never shrunk, if a later model
# asks for more parts.
_workers: ThreadPoolExecutor | None = None
_workers_size = 0
_workers_lock = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    global _workers, _workers_size
    from concurrent.futures import ThreadPoolExecutor

    with _workers_lock:
        if _workers is None or _workers_size < size:
            old = _workers
            _workers = ThreadPoolExecutor(max_workers=size, thread_name_prefix="vaegen-infer")
            _workers_size = size
            if old is not None:
                old.shutdown(wait=False)  # running parts finish; new ones go to the bigger pool
        return _workers


def _forget_workers_after_fork() -> None:
    """In a forked child only the forking thread exists: the parent's pool has no live workers
    (work sent to it would wait forever) and its lock may have been held by another thread at the
    fork. The child starts with no pool and a fresh lock, and `_pool` makes its own on first use."""
    global _workers, _workers_size, _workers_lock
    _workers = None
    _workers_size = 0
    _workers_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


class SplitRunner:
    """CPU, batch-parallel: one single-threaded session, run on chunks of a batch by `parts` threads.

    A batch of n rows is cut into contiguous chunks of at least `min_rows` rows, about four per
    thread; the calling thread and `parts - 1` workers of the shared pool take chunks one after
    another until none is left. ONNX Runtime's `run` is thread-safe and releases the GIL, so the
    chunks compute in parallel on one session (no extra copy of the weights). Taking chunks as
    they come, rather than one fixed half per thread, keeps every thread busy when one core is
    also serving another process: a fixed half on the busy core would make the whole call wait.
    Batches under two chunks go to a second session of the same graph, made on first use by
    `small_session`, which computes one small batch on ONNX Runtime's own intra-op threads (see
    providers.session_options); without one, they run on the calling thread alone.
    """

    provider = "cpu"

    def __init__(
        self,
        session: Any,
        parts: int,
        min_rows: int,
        small_session: Callable[[], Any] | None = None,
        make_session: Callable[[], Any] | None = None,
    ) -> None:
        # Both sessions may be made on first use, so a process that only runs small batches (a
        # server answering single images) builds one session per graph, not two.
        self._main = _Lazy(session, make_session)
        self.parts = max(1, parts)
        self.min_rows = max(1, min_rows)
        self._small = None if small_session is None else _Lazy(None, small_session)

    @property
    def session(self) -> Any:
        return self._main.get()

    def small_batch_session(self) -> Any:
        """The session for batches too small to split: created once, on first use."""
        return self.session if self._small is None else self._small.get()

    def _splits(self, rows: int) -> bool:
        """Whether a batch of `rows` is cut into chunks: at least two chunks of min_rows."""
        return self.parts > 1 and rows >= 2 * self.min_rows

    def session_for(self, rows: int) -> Any:
        """The session a batch of `rows` runs on: chunks of a split batch share the main one."""
        return self.session if self._splits(rows) else self.small_batch_session()

    def chunks(self, n: int) -> list[tuple[int, int]]:
        """[start, stop) row ranges for a batch of n rows; one range when n is too small to split."""
        if not self._splits(n):
            return [(0, n)]
        size = max(self.min_rows, -(-n // (4 * self.parts)))  # ceil: about 4 chunks per thread
        return [(lo, min(lo + size, n)) for lo in range(0, n, size)]

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        # Every input has the batch on axis 0 (the supervised AAE's decoder has two: z and y).
        n = int(next(iter(feeds.values())).shape[0])
        names = outputs if type(outputs) is list else list(outputs)
        if not self._splits(n):  # small batch: straight through, nothing copied
            return (self._main if self._small is None else self._small).run(names, feeds)
        spans = self.chunks(n)
        results: list[list[np.ndarray] | None] = [None] * len(spans)
        taken = iter(range(len(spans)))
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    i = next(taken, None)
                if i is None:
                    return
                lo, hi = spans[i]
                results[i] = self._main.run(names, {name: array[lo:hi] for name, array in feeds.items()})

        helpers = min(self.parts, len(spans)) - 1
        pool = _pool(self.parts - 1)
        self._main.get()  # made here, once, before the workers share it
        futures = [pool.submit(work) for _ in range(helpers)]
        work()
        for f in futures:
            f.result()  # re-raises a worker's exception here
        # (n, ...) per output: one copy of the outputs, small next to the compute at every size measured
        return [np.concatenate([r[j] for r in results if r is not None]) for j in range(len(names))]

    def run_device(self, outputs: Sequence[str], feeds: Mapping[str, Any]) -> list[Any]:
        raise UsageError("device-resident inputs need the CUDA provider; this model runs on the CPU")


class CudaRunner:
    """CUDA with I/O binding; numpy in and out through `run`, device OrtValues through `run_device`."""

    provider = "cuda"

    def __init__(self, session: Any, device_id: int) -> None:
        self.session = session
        self.device_id = device_id

    def session_for(self, rows: int) -> Any:
        return self.session

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        binding = self.session.io_binding()  # one binding per call: calls from several threads stay apart
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)  # one host -> device copy
        for name in outputs:
            binding.bind_output(name, "cuda", self.device_id)  # allocated on the device by ORT
        self.session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())  # one device -> host copy per output

    def run_device(self, outputs: Sequence[str], feeds: Mapping[str, Any]) -> list[Any]:
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, value)  # already on the device: no copy
        for name in outputs:
            binding.bind_output(name, "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        return list(binding.get_outputs())  # OrtValues on the device


@dataclass
class _Captured:
    """One batch size's session and the device buffers its captured graph reads and writes."""

    session: Any
    binding: Any
    input: Any  # OrtValue (B, *item shape) on the device
    outputs: dict[str, Any]  # name -> OrtValue (B, *item shape) on the device


class CudaGraphRunner:
    """CUDA graphs: one session, one pair of fixed device buffers and one captured graph per batch size."""

    provider = "cuda"

    def __init__(
        self,
        first_session: Any,
        make_session: Callable[[], Any],
        input_name: str,
        output_shapes: Mapping[str, tuple[int, ...]],
        device_id: int,
        max_graphs: int = MAX_CUDA_GRAPHS,
    ) -> None:
        self.session = first_session  # used for the first batch size seen
        self._make_session = make_session
        self._input_name = input_name
        self._output_shapes = dict(output_shapes)  # per item, without the batch axis
        self.device_id = device_id
        self._max_graphs = max_graphs
        self._captured: dict[int, _Captured] = {}
        # The buffers are shared by every call at a batch size, so calls must not overlap.
        self._lock = threading.Lock()

    @property
    def batch_sizes(self) -> list[int]:
        return sorted(self._captured)

    def session_for(self, rows: int) -> Any:
        """The session holding the graph captured for this batch size (the first one before any)."""
        slot = self._captured.get(rows)
        return self.session if slot is None else slot.session

    def _slot(self, batch: int, item_shape: tuple[int, ...]) -> _Captured:
        slot = self._captured.get(batch)
        if slot is not None:
            return slot
        if len(self._captured) >= self._max_graphs:
            raise UsageError(
                f"CUDA-graph mode keeps one captured graph per batch size and already holds {self._max_graphs} "
                f"({', '.join(map(str, self.batch_sizes))}); send a few fixed batch sizes, or turn CUDA graphs off"
            )
        import onnxruntime as ort

        session = self.session if not self._captured else self._make_session()
        binding = session.io_binding()
        value = ort.OrtValue.ortvalue_from_shape_and_type((batch, *item_shape), np.float32, "cuda", self.device_id)
        binding.bind_ortvalue_input(self._input_name, value)
        outputs = {}
        for name, shape in self._output_shapes.items():  # every output bound: unbound ones would move
            buffer = ort.OrtValue.ortvalue_from_shape_and_type((batch, *shape), np.float32, "cuda", self.device_id)
            binding.bind_ortvalue_output(name, buffer)
            outputs[name] = buffer
        slot = _Captured(session, binding, value, outputs)
        self._captured[batch] = slot
        return slot

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if list(feeds) != [self._input_name]:
            raise UsageError(f"CUDA-graph mode feeds exactly one input, '{self._input_name}'")
        array = feeds[self._input_name]  # (B, *item shape) float32, C-contiguous
        with self._lock:
            slot = self._slot(int(array.shape[0]), tuple(array.shape[1:]))
            slot.input.update_inplace(array)  # host -> the captured input buffer, same address
            slot.session.run_with_iobinding(slot.binding)  # first run captures, later runs replay
            return [slot.outputs[name].numpy() for name in outputs]  # copies: the buffers are reused

    def run_device(self, outputs: Sequence[str], feeds: Mapping[str, Any]) -> list[Any]:
        # The captured output buffers are overwritten by the next call, so handing them out would
        # alias results; device-resident chaining uses the plain CUDA runner.
        raise UsageError("device-resident inputs and outputs are not available in CUDA-graph mode; turn it off")


def build_runner(
    make: SessionFactory, request: ProviderRequest, input_name: str, output_shapes: Mapping[str, tuple[int, ...]]
) -> Runner:
    """The runner for one graph: `make(small_batch)` creates a session and says which provider
    really runs it; `output_shapes` are per item (without the batch axis), for CUDA graphs.

    When the provider plan is CPU alone (asked for, or no CUDA to try), no session is made here:
    each is made when a batch first needs it. Otherwise one session is made now, since only a
    real session tells whether CUDA came up."""
    parts = split_parts(request)

    def cpu_runner(first: Any = None) -> Runner:
        main = None if first is not None else (lambda: make(False)[0])
        if parts == 1:
            return SessionRunner(first, make_session=main)
        return SplitRunner(first, parts, MIN_ROWS_PER_PART, lambda: make(True)[0], make_session=main)

    if planned_provider(request) == "cpu":
        return cpu_runner()
    session, active = make(False)
    if active == "cpu":
        return cpu_runner(session)
    if not request.cuda_graph:
        return CudaRunner(session, request.device_id)
    return CudaGraphRunner(session, lambda: make(False)[0], input_name, output_shapes, request.device_id)
