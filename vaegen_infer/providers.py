"""Execution-provider choice and ONNX Runtime session creation.

`onnxruntime-gpu` lists CUDAExecutionProvider as available even on machines without a GPU or
without the CUDA libraries; asking for it there makes ONNX Runtime fall back to CPU. So the only
truth is `session.get_providers()` after the session exists, and that is what `check_active` reads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ProviderError, UsageError

PROVIDER_CHOICES = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

_warned_fallback = False


@dataclass(frozen=True)
class ProviderRequest:
    """What the caller asked for. `kind` is auto (CUDA if it really works, else CPU), cpu, or cuda."""

    kind: str = "auto"
    device_id: int = 0
    threads: int | None = None  # intra-op threads on CPU; None = physical cores
    tf32: bool = False  # TF32 matmuls on Ampere+; off by default so GPU results match CPU to ~1e-6

    def __post_init__(self) -> None:
        if self.kind not in PROVIDER_CHOICES:
            raise UsageError(f"unknown provider '{self.kind}'; choose one of: {', '.join(PROVIDER_CHOICES)}")
        if self.device_id < 0:
            raise UsageError(f"device id must be >= 0, got {self.device_id}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads must be >= 1, got {self.threads}")


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
    """Whether an NVIDIA driver library can be loaded; without it, CUDA cannot work at all."""
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    found = ctypes.util.find_library("cuda")
    if found:
        names.insert(0, found)
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def plan(request: ProviderRequest, available: Sequence[str], driver_present: bool) -> list[Any]:
    """The provider list to hand to `InferenceSession`, most preferred first."""
    cuda_entry = (
        CUDA,
        {
            "device_id": str(request.device_id),
            "cudnn_conv_algo_search": "HEURISTIC",
            "use_tf32": "1" if request.tf32 else "0",
        },
    )
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


def preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries that the `cuda` extra installs from the package index."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()


def session_options(request: ProviderRequest) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = request.threads or physical_cores()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    return opts


def create_session(model_bytes: bytes, request: ProviderRequest) -> tuple[Any, str]:
    """Create one session for a serialized graph; return it and the provider really running it."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    providers = plan(request, available, driver_present=request.kind == "cuda" or cuda_driver_present())
    if any((p[0] if isinstance(p, tuple) else p) == CUDA for p in providers):
        preload_cuda_libraries()
    session = ort.InferenceSession(model_bytes, sess_options=session_options(request), providers=providers)
    active = session.get_providers()
    which = check_active(request, active)
    if request.kind == "auto":
        warn_fallback_once(providers, active)
    return session, which
