"""Execution-provider choice and ONNX Runtime session creation.

`onnxruntime-gpu` lists CUDAExecutionProvider as available even on machines without a GPU or
without the CUDA libraries; asking for it there makes ONNX Runtime fall back to CPU. So the only
truth is `session.get_providers()` after the session exists, and that is what `check_active` reads.

CPU session settings were chosen by measurement on a 2-core machine (`python
benchmarks/session_settings.py`, results in benchmarks/results/session_settings.md); see
`session_options` for the numbers behind each default.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ProviderError, UsageError


def _machine() -> str:
    import platform

    return platform.machine()


PROVIDER_CHOICES = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# cuDNN's convolution algorithm choice. EXHAUSTIVE times every algorithm on the first run of each
# new input shape (a slow first call per batch size); HEURISTIC asks cuDNN's heuristics, no timing.
CONV_ALGO_SEARCH = ("HEURISTIC", "EXHAUSTIVE", "DEFAULT")

_warned_fallback = False
_preloaded = False
# Intra-op threads of the process-wide ONNX Runtime pool once `share_thread_pool` has created (or
# joined) it; None while every session has its own pool.
_shared_pool_threads: int | None = None

# CPU parallelism, chosen by measurement (see session_options): "batch" runs single-threaded
# sessions on parts of a batch, one per core (runners.SplitRunner); "intra-op" gives one session
# ONNX Runtime's own thread pool.
PARALLEL_CHOICES = ("batch", "intra-op")
DEFAULT_PARALLEL = "batch"
MIN_ROWS_PER_PART = 32  # rows per chunk at least: ~2 ms of work, next to ~0.05 ms of hand-off
# Whether intra-op pool threads busy-wait for work between runs (only the "intra-op" mode has
# such threads), chosen by measurement: see session_options.
SPINNING = False


@dataclass(frozen=True)
class ProviderRequest:
    """What the caller asked for. `kind` is auto (CUDA if it really works, else CPU), cpu, or cuda."""

    kind: str = "auto"
    device_id: int = 0
    threads: int | None = None  # intra-op threads on CPU; None = physical cores
    tf32: bool = False  # TF32 matmuls on Ampere+; off by default so GPU results match CPU to ~1e-6
    cudnn_conv_algo_search: str = "HEURISTIC"  # see CONV_ALGO_SEARCH
    # CUDA graphs: capture each batch size's kernel launches once and replay them; one session and
    # one graph per batch size (see runners.CudaGraphRunner). Only with CUDA.
    cuda_graph: bool = False
    parallel: str = DEFAULT_PARALLEL  # CPU: see PARALLEL_CHOICES
    # CPU: intra-op threads of the session for batches too small to split (None: `threads`, spinning).
    # 1 for a server, whose event loop needs the other core: see session_options.
    small_batch_threads: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in PROVIDER_CHOICES:
            raise UsageError(f"unknown provider '{self.kind}'; choose one of: {', '.join(PROVIDER_CHOICES)}")
        if self.device_id < 0:
            raise UsageError(f"device id must be >= 0, got {self.device_id}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads must be >= 1, got {self.threads}")
        if self.small_batch_threads is not None and self.small_batch_threads < 1:
            raise UsageError(f"small_batch_threads must be >= 1, got {self.small_batch_threads}")
        if self.cudnn_conv_algo_search not in CONV_ALGO_SEARCH:
            raise UsageError(
                f"unknown cudnn_conv_algo_search '{self.cudnn_conv_algo_search}'; "
                f"choose one of: {', '.join(CONV_ALGO_SEARCH)}"
            )
        if self.parallel not in PARALLEL_CHOICES:
            raise UsageError(f"unknown parallel mode '{self.parallel}'; choose one of: {', '.join(PARALLEL_CHOICES)}")
        if self.cuda_graph and self.kind == "cpu":
            raise UsageError("CUDA graphs need the CUDA provider: use providers 'cuda' (or 'auto' on a GPU machine)")


def physical_cores() -> int:
    """Physical cores available to this process (hyper-threads share execution units, so count once)."""
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        logical = os.cpu_count() or 1
    siblings = _threads_per_core()
    return max(1, logical // siblings)


def _threads_per_core() -> int:
    try:
        with open("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list") as fh:
            text = fh.read().strip()
    except OSError:
        return 1
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return max(1, count)


def cuda_driver_present() -> bool:
    """Whether an NVIDIA driver library can be loaded; without it, CUDA cannot work at all.

    The driver installs its library under its soname in the loader's path, so loading it by name
    is enough. (`ctypes.util.find_library` was used here before: it runs `ldconfig` in a
    subprocess, about 20 ms of every `vaegen-infer` command on a machine without a GPU.)"""
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def plan(request: ProviderRequest, available: Sequence[str], driver_present: bool) -> list[Any]:
    """The provider list to hand to `InferenceSession`, most preferred first."""
    cuda_entry = (CUDA, cuda_options(request))
    if request.kind == "cpu":
        return [CPU]
    if request.kind == "cuda":
        if CUDA not in available:
            raise ProviderError(
                "CUDA was requested but this onnxruntime build has no CUDA provider: "
                "install vaegen-infer[cuda] (onnxruntime-gpu) or use --providers cpu"
            )
        return [cuda_entry, CPU]
    # auto: only try CUDA where it can work, so CPU-only machines skip the failed-load noise.
    if CUDA in available and driver_present:
        return [cuda_entry, CPU]
    return [CPU]


def planned_provider(request: ProviderRequest) -> str | None:
    """'cpu' when the provider plan is CPU alone, so no session is needed to know what will run;
    None when CUDA will be tried (only a session then tells whether it came up)."""
    if request.kind == "cpu":
        return "cpu"
    if request.kind == "cuda":
        return None
    ort = onnxruntime_module()
    planned = plan(request, ort.get_available_providers(), driver_present=cuda_driver_present())
    return "cpu" if planned == [CPU] else None


def cuda_options(request: ProviderRequest) -> dict[str, str]:
    """Explicit CUDA execution-provider options (ONNX Runtime takes them as strings)."""
    return {
        "device_id": str(request.device_id),
        "cudnn_conv_algo_search": request.cudnn_conv_algo_search,
        # ONNX Runtime's own default is TF32 on: 10-bit mantissas in convolutions and matmuls,
        # errors near 1e-3. Off unless asked, so GPU output matches the CPU's to float32 rounding.
        "use_tf32": "1" if request.tf32 else "0",
        "enable_cuda_graph": "1" if request.cuda_graph else "0",
    }


def check_active(request: ProviderRequest, active: Sequence[str]) -> str:
    """Return 'cuda' or 'cpu' from the session's real providers; fail if CUDA was demanded and is off."""
    if CUDA in active:
        return "cuda"
    if request.kind == "cuda":
        raise ProviderError(
            "CUDA was requested but ONNX Runtime is running on CPU (no GPU, or the CUDA/cuDNN libraries "
            "did not load): install vaegen-infer[cuda] and check `nvidia-smi`, or use --providers cpu"
        )
    return "cpu"


def warn_fallback_once(planned: Sequence[Any], active: Sequence[str]) -> None:
    """Under `auto`, say once per process that CUDA was tried and CPU runs instead."""
    global _warned_fallback
    tried_cuda = any((p[0] if isinstance(p, tuple) else p) == CUDA for p in planned)
    if tried_cuda and CUDA not in active and not _warned_fallback:
        _warned_fallback = True
        warnings.warn("CUDA is not usable here; running on CPU", RuntimeWarning, stacklevel=3)


def cuda_libraries_from_pip() -> bool:
    """Whether the CUDA/cuDNN libraries come from pip wheels (the `cuda` extra installs them under
    the `nvidia` namespace package), rather than from a system-wide CUDA installation."""
    return importlib.util.find_spec("nvidia") is not None


def preload_cuda_libraries() -> bool:
    """Load the CUDA and cuDNN libraries that the `cuda` extra installs from the package index.

    ONNX Runtime's CUDA provider finds a system CUDA through the loader's path but not the pip
    wheels' copies; `onnxruntime.preload_dlls()` loads those first. Returns whether it ran."""
    global _preloaded
    ort = onnxruntime_module()

    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is None or not cuda_libraries_from_pip():
        return False
    if not _preloaded:  # once per process: a loaded library stays loaded
        preload()
        _preloaded = True
    return True


def share_thread_pool(threads: int | None = None) -> int:
    """Run every session vaegen-infer creates from now on in this process on ONE thread pool:
    ONNX Runtime's process-wide (global) pool, `threads` intra-op threads (default: physical cores).

    Returns the pool's thread count. Why opt in: each session otherwise owns a pool of its own, so
    a process holding several models (an encoder and a decoder, or many bundles in a server) keeps
    several pools whose threads compete for the same cores. Why not the default: the pool belongs
    to the whole process, and once it exists the Python onnxruntime refuses every session that
    asks for its own pool (the default of `onnxruntime.InferenceSession`), including sessions made
    by other code in the same process. Call it once, early, in processes you own.

    If other code already created the global pool, vaegen-infer joins it (its size is theirs and
    is reported as unknown, 0). A second call with a different thread count is refused: the pool
    cannot be resized.
    """
    global _shared_pool_threads
    ort = onnxruntime_module()

    want = threads or physical_cores()
    if threads is not None and threads < 1:
        raise UsageError(f"threads must be >= 1, got {threads}")
    if _shared_pool_threads is not None:
        if threads is not None and _shared_pool_threads not in (want, 0):
            raise UsageError(
                f"this process's shared thread pool already has {_shared_pool_threads} threads; "
                "ONNX Runtime cannot resize it"
            )
        return _shared_pool_threads
    try:
        ort.set_global_thread_pool_sizes(want, 1)  # intra-op, inter-op (sessions run sequentially)
    except Exception as exc:
        if "already been created" not in str(exc):
            raise
        _shared_pool_threads = 0  # someone else's pool: join it, size unknown
        return 0
    _shared_pool_threads = want
    return want


def shared_pool_threads() -> int | None:
    """The shared pool's thread count (0: made by other code, size unknown), or None if not in use."""
    return _shared_pool_threads


def session_threads(request: ProviderRequest) -> int:
    """CPU threads a model loaded with `request` computes on (0: a foreign shared pool, size unknown)."""
    if _shared_pool_threads is not None:
        return _shared_pool_threads
    return request.threads or physical_cores()


def split_parts(request: ProviderRequest) -> int:
    """How many threads run chunks of a batch on a CPU model's session at once; 1 = no splitting."""
    if _shared_pool_threads is not None or request.parallel != "batch":
        return 1
    return request.threads or physical_cores()


def intra_op_threads(request: ProviderRequest) -> int:
    """ONNX Runtime intra-op threads per session: 1 when batches are split across cores."""
    return 1 if request.parallel == "batch" else request.threads or physical_cores()


def session_options(request: ProviderRequest, small_batch: bool = False) -> Any:
    """CPU session settings, each chosen by measurement on this project's 2-core benchmark
    machines (`python benchmarks/session_settings.py`; benchmarks/results/session_settings.md has
    the tables of the latest run, on an idle machine: p50 over 5 interleaved rounds). An earlier
    run on a machine loaded by another user's training jobs (1-minute load average 3.7-4.0) is
    quoted where it decided something: what works on a shared machine matters as much as what
    works on an idle one.

    - `small_batch`: the options of the second session a batch-split runner keeps for batches too
      small to split (under 2 x MIN_ROWS_PER_PART rows): ONNX Runtime's own T intra-op threads,
      spinning on. Idle, that ran batch 1 2.0-2.3x faster than one thread (encoder 0.071 against
      0.165 ms, decoder 0.090 against 0.184) and batch 8 1.2-1.9x faster; loaded, it was within
      8% of one thread either way at batch 1 to 8. Its pool threads spin only around small calls.
      `small_batch_threads=1` makes it single-threaded, with no pool thread to spin: what a server
      needs (`vaegen-infer serve`), where the event loop and the client share the two cores with
      it. There, on a loaded machine, the spinning pool thread at least doubled the CPU per request
      of the server's threads other than the event loop (benchmarks/results/serve_ablation*.md).

    - Graph optimisation ORT_ENABLE_ALL: its NCHWc layout transformer runs the encoder's
      convolutions 1.7x faster than EXTENDED at batch 64 and 512 and 1.25x at batch 1; the
      decoder (Gemm + ConvTranspose, which NCHWc does not cover) is the same at every level.
      Session creation costs about the same at every level (4-6 ms).
    - Cores: T = physical cores (`threads` overrides), used by splitting batches of 64 rows or
      more across T threads on a single-threaded session (runners.SplitRunner), not by ONNX
      Runtime's intra-op pool. Intra-op threads with spinning (ONNX Runtime's default) ran the
      decoder 1.7-2.1x slower than one thread at batch 64 to 4096 whenever another process held
      a core, because each operator waits for its slowest thread; the batch split stayed between
      14% slower and 5% faster than one thread there (decoder b4096 414 vs 434 ms) and was the
      fastest of the five variants in 6 of 14 cells.
    - Single-threaded sessions have no pool threads, so there is nothing to spin and nothing to
      oversubscribe: an encoder and a decoder in one process (reconstruct) share the batch
      split's one worker pool: within 5% of the fastest variant at every batch from 2 to 512,
      where per-session pools with spinning were up to 2.4x slower.
    - Spinning (intra-op mode only, `parallel="intra-op"`): off. On, the decoder was 1.6-2.0x
      slower at batch 64-4096 and only ~0.04 ms faster at batch 1; stopping it after each run
      (`session.force_spinning_stop`) helped only with two sessions in turn, less than off.
    - One inter-op thread, sequential execution: both graphs are single chains of nodes.
    """
    ort = onnxruntime_module()

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    if _shared_pool_threads is not None:
        opts.use_per_session_threads = False  # the process-wide pool; see share_thread_pool
        return opts
    if small_batch:
        threads = request.small_batch_threads or request.threads or physical_cores()
        opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if threads > 1 else "0")
        return opts
    opts.intra_op_num_threads = intra_op_threads(request)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if SPINNING else "0")
    return opts


# The wheel a platform gets (pyproject.toml's markers), for messages about a broken install.
_GPU_WHEEL_PLATFORM = sys.platform in ("linux", "win32") and _machine() in ("x86_64", "AMD64")
ORT_WHEEL = "onnxruntime-gpu" if _GPU_WHEEL_PLATFORM else "onnxruntime"
# ONNX Runtime's default logger severity (0 verbose ... 4 fatal) and the one used while a session
# is created: its own multi-line warnings about a CUDA provider that cannot load would otherwise
# come before our one-line message that says the same and what to do.
ORT_DEFAULT_SEVERITY = 2
QUIET_SEVERITY = 4


def onnxruntime_module() -> Any:
    """`import onnxruntime`, or a ProviderError saying how to repair a broken install.

    Installing both `onnxruntime` and `onnxruntime-gpu` and removing one leaves a package that
    imports but lacks its API (they share the module name): the fix is to reinstall one of them."""
    fix = f"pip install --force-reinstall {ORT_WHEEL}"
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ProviderError(f"ONNX Runtime cannot be imported ({exc}): {fix}") from exc
    missing = [n for n in ("InferenceSession", "get_available_providers", "SessionOptions") if not hasattr(ort, n)]
    if missing:
        raise ProviderError(
            f"the installed ONNX Runtime is broken (no {', '.join(missing)}; usually both onnxruntime and "
            f"onnxruntime-gpu were installed and one removed): {fix}"
        )
    return ort


# Every session this process made, held weakly, so that a forked child can keep them (see below).
_made_sessions: weakref.WeakSet[Any] = weakref.WeakSet()
# In a forked child: the sessions inherited from the parent, never to be destroyed here.
_inherited_sessions: list[Any] = []


def _keep_inherited_sessions() -> None:
    """A forked child must never destroy a session it inherited. ONNX Runtime's intra-op thread pool
    does not survive fork: the child has none of the pool's threads, but the condition variable they
    were parked on (an idle pool's state) still counts them as waiters, so the session's destructor
    blocks forever in pthread_cond_destroy. Seen: a child's garbage collection freeing a parent's idle
    2-thread session hung (tests/test_fork_safety.py). Pinning them costs the child nothing: their
    memory is the parent's, shared copy-on-write. Running them works; only destroying them hangs."""
    _inherited_sessions.extend(_made_sessions)


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_keep_inherited_sessions)


def create_session(model_bytes: bytes, request: ProviderRequest, small_batch: bool = False) -> tuple[Any, str]:
    """Create one session for a serialized graph; return it and the provider really running it.
    `small_batch`: CPU options for batches too small to split (see session_options)."""
    ort = onnxruntime_module()
    available = ort.get_available_providers()
    providers = plan(request, available, driver_present=request.kind == "cuda" or cuda_driver_present())
    wants_cuda = any((p[0] if isinstance(p, tuple) else p) == CUDA for p in providers)
    if wants_cuda:
        preload_cuda_libraries()
    opts = session_options(request, small_batch)
    if wants_cuda:  # check_active / warn_fallback_once below say in one line what ORT would print
        ort.set_default_logger_severity(QUIET_SEVERITY)
    try:
        session = ort.InferenceSession(model_bytes, sess_options=opts, providers=providers)
    finally:
        if wants_cuda:
            ort.set_default_logger_severity(ORT_DEFAULT_SEVERITY)
    _made_sessions.add(session)
    active = session.get_providers()
    which = check_active(request, active)
    if request.kind == "auto":
        warn_fallback_once(providers, active)
    return session, which
