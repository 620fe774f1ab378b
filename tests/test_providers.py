"""Provider choice, tested with fakes: this machine has no GPU, so the CUDA path is exercised by
planning and checking logic against the provider lists a real GPU machine would report."""

from __future__ import annotations

import pytest

from vaegen_infer.errors import ProviderError, UsageError
from vaegen_infer.providers import CPU, CUDA, ProviderRequest, check_active, plan

GPU_WHEEL = [CUDA, CPU]


def test_cpu_request_never_lists_cuda() -> None:
    assert plan(ProviderRequest("cpu"), GPU_WHEEL, driver_present=True) == [CPU]


def test_auto_tries_cuda_only_where_a_driver_exists() -> None:
    assert plan(ProviderRequest("auto"), GPU_WHEEL, driver_present=False) == [CPU]
    planned = plan(ProviderRequest("auto", device_id=1), GPU_WHEEL, driver_present=True)
    assert planned[0][0] == CUDA and planned[0][1]["device_id"] == "1" and planned[-1] == CPU


def test_cuda_options_keep_tf32_off_unless_asked() -> None:
    off = plan(ProviderRequest("cuda"), GPU_WHEEL, driver_present=True)[0][1]
    on = plan(ProviderRequest("cuda", tf32=True), GPU_WHEEL, driver_present=True)[0][1]
    assert off["use_tf32"] == "0" and on["use_tf32"] == "1"


def test_cuda_request_on_a_cpu_only_build_fails_clearly() -> None:
    with pytest.raises(ProviderError, match="no CUDA provider"):
        plan(ProviderRequest("cuda"), [CPU], driver_present=True)


def test_check_active_reads_the_real_session_providers() -> None:
    # The GPU wheel lists CUDA as available, but a session on a GPU-less machine runs CPU only.
    assert check_active(ProviderRequest("auto"), [CPU]) == "cpu"
    assert check_active(ProviderRequest("cuda"), [CUDA, CPU]) == "cuda"
    with pytest.raises(ProviderError, match="running on CPU"):
        check_active(ProviderRequest("cuda"), [CPU])


def test_bad_requests() -> None:
    with pytest.raises(UsageError):
        ProviderRequest("rocm")
    with pytest.raises(UsageError):
        ProviderRequest("cpu", threads=0)
