"""The CUDA path and the thread-pool logic, tested with fakes: this machine has no GPU.

A fake `InferenceSession` wraps a real CPU session for the arithmetic but reports the providers a
GPU machine would, and implements I/O binding over fake device values (`FakeOrtValue`) that
count host <-> device copies. So every line of the CUDA code runs here, against the onnxruntime
API as documented; none of it has run on a real GPU.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
import pytest

import vaegen_infer as vi
from vaegen_infer import providers
from vaegen_infer.errors import ProviderError, UsageError
from vaegen_infer.providers import CPU, CUDA, ProviderRequest, cuda_options
from vaegen_infer.runners import CudaGraphRunner, CudaRunner, SessionRunner, SplitRunner

from .conftest import VAE_DIM

RealSession = ort.InferenceSession


class FakeOrtValue:
    """A tensor 'on the device': numpy storage, and counters of copies across the bus."""

    to_host = 0

    def __init__(self, data: np.ndarray, device: str = "cuda") -> None:
        self.data = data
        self.device = device

    @classmethod
    def ortvalue_from_numpy(cls, array: np.ndarray, device: str = "cpu", device_id: int = 0) -> FakeOrtValue:
        return cls(np.array(array, copy=True), device)

    @classmethod
    def ortvalue_from_shape_and_type(
        cls, shape: Sequence[int], dtype: Any, device: str = "cpu", device_id: int = 0
    ) -> FakeOrtValue:
        return cls(np.zeros(tuple(shape), dtype), device)

    def update_inplace(self, array: np.ndarray) -> None:
        assert array.shape == self.data.shape, "a captured buffer cannot change shape"
        self.data[...] = array  # same storage: the captured graph's address stays valid

    def numpy(self) -> np.ndarray:
        FakeOrtValue.to_host += 1
        return self.data.copy()

    def device_name(self) -> str:
        return self.device


class FakeBinding:
    def __init__(self) -> None:
        self.inputs: dict[str, FakeOrtValue] = {}
        self.outputs: dict[str, FakeOrtValue | None] = {}

    def bind_cpu_input(self, name: str, array: np.ndarray) -> None:
        self.inputs[name] = FakeOrtValue(np.array(array, copy=True))  # host -> device

    def bind_ortvalue_input(self, name: str, value: FakeOrtValue) -> None:
        assert value.device == "cuda"
        self.inputs[name] = value

    def bind_output(self, name: str, device: str = "cpu", device_id: int = 0) -> None:
        assert device == "cuda"
        self.outputs[name] = None  # allocated by the run

    def bind_ortvalue_output(self, name: str, value: FakeOrtValue) -> None:
        self.outputs[name] = value

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.get_outputs()]

    def get_outputs(self) -> list[FakeOrtValue]:
        assert all(v is not None for v in self.outputs.values()), "run first"
        return [v for v in self.outputs.values() if v is not None]


class FakeSession:
    """Reports CUDA as active when it was planned (and `gpu` is True); computes on a real CPU session."""

    gpu = True
    created: ClassVar[list[FakeSession]] = []

    def __init__(self, model: bytes, sess_options: Any = None, providers: Sequence[Any] = ()) -> None:
        self.providers = list(providers)
        self.options = sess_options
        self.real = RealSession(model, providers=[CPU])
        self.plain_runs = 0
        self.bound_runs = 0
        FakeSession.created.append(self)

    def get_providers(self) -> list[str]:
        planned = [p[0] if isinstance(p, tuple) else p for p in self.providers]
        return [CUDA, CPU] if CUDA in planned and self.gpu else [CPU]

    def cuda_options(self) -> dict[str, str]:
        return next(p[1] for p in self.providers if isinstance(p, tuple) and p[0] == CUDA)

    def get_inputs(self) -> Any:
        return self.real.get_inputs()

    def get_outputs(self) -> Any:
        return self.real.get_outputs()

    def run(self, outputs: Any, feeds: Any) -> Any:
        self.plain_runs += 1
        return self.real.run(outputs, feeds)

    def io_binding(self) -> FakeBinding:
        return FakeBinding()

    def run_with_iobinding(self, binding: FakeBinding) -> None:
        self.bound_runs += 1
        feeds = {k: v.data for k, v in binding.inputs.items()}
        names = list(binding.outputs)
        for name, value in zip(names, self.real.run(names, feeds)):
            if binding.outputs[name] is None:
                binding.outputs[name] = FakeOrtValue(value)
            else:
                binding.outputs[name].data[...] = value  # a captured graph writes its fixed buffer


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> type[FakeSession]:
    """A machine where onnxruntime-gpu, a driver and a GPU are present (all fake)."""
    FakeSession.created = []
    FakeSession.gpu = True
    FakeOrtValue.to_host = 0
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(ort, "OrtValue", FakeOrtValue)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(providers, "cuda_driver_present", lambda: True)
    monkeypatch.setattr(providers, "cuda_libraries_from_pip", lambda: False)
    monkeypatch.setattr(providers, "_warned_fallback", False)
    return FakeSession


def cpu_reference(z: np.ndarray) -> np.ndarray:
    return vi.load("mnist-vae", providers="cpu").decode(z)


def test_cuda_options_are_explicit() -> None:
    req = ProviderRequest("cuda", device_id=1, cudnn_conv_algo_search="EXHAUSTIVE", cuda_graph=True)
    assert cuda_options(req) == {
        "device_id": "1",
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "use_tf32": "0",
        "enable_cuda_graph": "1",
    }
    assert cuda_options(ProviderRequest("cuda", tf32=True))["use_tf32"] == "1"


def test_bad_cuda_requests() -> None:
    with pytest.raises(UsageError, match="cudnn_conv_algo_search"):
        ProviderRequest("cuda", cudnn_conv_algo_search="FASTEST")
    with pytest.raises(UsageError, match="CUDA graphs need the CUDA provider"):
        ProviderRequest("cpu", cuda_graph=True)


def test_cuda_runs_through_io_binding(gpu: type[FakeSession]) -> None:
    g = vi.load("mnist-vae", providers="cuda", device_id=0)
    z = g.sample_latents(5, seed=0)
    x = g.decode(z)
    assert g.provider() == "cuda"
    assert isinstance(g._runner("decoder"), CudaRunner)
    (session,) = gpu.created
    assert session.cuda_options() == {
        "device_id": "0",
        "cudnn_conv_algo_search": "HEURISTIC",
        "use_tf32": "0",
        "enable_cuda_graph": "0",
    }
    assert session.bound_runs == 1 and session.plain_runs == 0
    np.testing.assert_allclose(x, cpu_reference(z), atol=1e-6)
    mu, logvar = g.encode(x)
    assert mu.shape == logvar.shape == (5, VAE_DIM)
    assert "encoder" in g._runners  # created only now, when first needed


def test_device_calls_keep_tensors_on_the_gpu(gpu: type[FakeSession]) -> None:
    g = vi.load("mnist-vae", providers="cuda")
    z = g.sample_latents(3, seed=1)
    z_dev = ort.OrtValue.ortvalue_from_numpy(z, "cuda", 0)
    x_dev = g.decode_on_device(z_dev)  # (3, 1, 28, 28) on the device
    mu_dev, _ = g.encode_on_device(x_dev)  # chained with no host round trip
    assert x_dev.device_name() == "cuda" and mu_dev.device_name() == "cuda"
    assert FakeOrtValue.to_host == 0
    np.testing.assert_allclose(x_dev.numpy(), cpu_reference(z), atol=1e-6)


def test_cuda_graphs_capture_one_session_per_batch_size(gpu: type[FakeSession]) -> None:
    g = vi.load("mnist-vae", providers="cuda", cuda_graph=True)
    z4, z8 = g.sample_latents(4, seed=2), g.sample_latents(8, seed=3)
    first = g.decode(z4)
    runner = g._runner("decoder")
    assert isinstance(runner, CudaGraphRunner)
    buffer = runner._captured[4].input
    second = g.decode(z4[::-1].copy())
    assert runner._captured[4].input is buffer  # new data, same captured address
    g.decode(z8)
    assert runner.batch_sizes == [4, 8]
    assert len(gpu.created) == 2  # one session (and graph) per batch size
    assert all(s.cuda_options()["enable_cuda_graph"] == "1" for s in gpu.created)
    np.testing.assert_allclose(first, cpu_reference(z4), atol=1e-6)
    np.testing.assert_allclose(second, first[::-1], atol=1e-6)
    with pytest.raises(UsageError, match="not available in CUDA-graph mode"):
        g.decode_on_device(ort.OrtValue.ortvalue_from_numpy(z4, "cuda", 0))


def test_cuda_graphs_refuse_endless_batch_sizes(gpu: type[FakeSession]) -> None:
    g = vi.load("mnist-vae", providers="cuda")
    session = g._session("decoder")
    runner = CudaGraphRunner(session, lambda: FakeSession(b"", None, []), "z", {"x": (1, 28, 28)}, 0, max_graphs=1)
    runner.run(["x"], {"z": g.sample_latents(2, seed=0)})
    with pytest.raises(UsageError, match="one captured graph per batch size"):
        runner.run(["x"], {"z": g.sample_latents(3, seed=0)})


def test_cuda_demanded_but_not_active_fails(gpu: type[FakeSession]) -> None:
    gpu.gpu = False  # the session came up on CPU: libraries missing, or no device
    g = vi.load("mnist-vae", providers="cuda")
    with pytest.raises(ProviderError, match="running on CPU"):
        g.decode(np.zeros((1, VAE_DIM), np.float32))


def test_auto_warns_once_and_runs_on_cpu(gpu: type[FakeSession]) -> None:
    gpu.gpu = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = vi.load("mnist-vae", providers="auto")
        b = vi.load("mnist-vae", providers="auto")
        assert a.provider() == "cpu" and b.provider() == "cpu"
        assert isinstance(a._runner("decoder"), (SessionRunner, SplitRunner))
    assert [str(w.message) for w in caught] == ["CUDA is not usable here; running on CPU"]
    with pytest.raises(UsageError, match="need the CUDA provider"):
        a.decode_on_device(object())


def test_preload_dlls_only_for_pip_installed_cuda(gpu: type[FakeSession], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append(1), raising=False)
    monkeypatch.setattr(providers, "_preloaded", False)
    vi.load("mnist-vae", providers="cuda").decode(np.zeros((1, VAE_DIM), np.float32))
    assert calls == []  # system CUDA: the loader finds it
    monkeypatch.setattr(providers, "cuda_libraries_from_pip", lambda: True)
    g = vi.load("mnist-vae", providers="cuda")
    g.decode(np.zeros((1, VAE_DIM), np.float32))
    g.encode(np.zeros((1, 1, 28, 28), np.float32))
    assert calls == [1]  # the `cuda` extra's wheels: preloaded once per process
    vi.load("mnist-vae", providers="cpu").decode(np.zeros((1, VAE_DIM), np.float32))
    assert calls == [1]


# -- thread pools (the real global pool is never created here: it would bind the whole test process)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(ort, "set_global_thread_pool_sizes", lambda intra, inter: calls.append((intra, inter)))
    monkeypatch.setattr(providers, "_shared_pool_threads", None)
    return calls


def test_per_session_pools_by_default(pool: list[tuple[int, int]]) -> None:
    opts = providers.session_options(ProviderRequest("cpu", threads=3, parallel="intra-op"))
    assert opts.use_per_session_threads is True
    assert opts.intra_op_num_threads == 3
    assert providers.session_options(ProviderRequest("cpu", threads=3, parallel="batch")).intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if providers.SPINNING else "0")
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert pool == []


def test_shared_pool_is_created_once(pool: list[tuple[int, int]]) -> None:
    assert providers.share_thread_pool() == providers.physical_cores()
    assert providers.share_thread_pool() == providers.physical_cores()  # no second creation
    assert pool == [(providers.physical_cores(), 1)]
    opts = providers.session_options(ProviderRequest("cpu", threads=1))
    assert opts.use_per_session_threads is False
    assert providers.session_threads(ProviderRequest("cpu", threads=1)) == providers.physical_cores()
    with pytest.raises(UsageError, match="cannot resize"):
        providers.share_thread_pool(providers.physical_cores() + 1)


def test_shared_pool_joins_a_pool_made_by_other_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def taken(intra: int, inter: int) -> None:
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Global thread pools have already been created")

    monkeypatch.setattr(ort, "set_global_thread_pool_sizes", taken)
    monkeypatch.setattr(providers, "_shared_pool_threads", None)
    assert providers.share_thread_pool(2) == 0
    assert providers.shared_pool_threads() == 0
    assert providers.session_options(ProviderRequest("cpu")).use_per_session_threads is False


def test_sampling_never_builds_the_encoder() -> None:
    g = vi.load("mnist-vae", providers="cpu")
    g.sample(4, seed=0)
    assert set(g._runners) == {"decoder"}


def test_batch_split_matches_one_thread_and_shares_one_worker_pool() -> None:
    from vaegen_infer import runners

    split = vi.load("mnist-vae", providers="cpu", threads=3)  # three threads even on a 2-core machine
    alone = vi.load("mnist-vae", providers="cpu", threads=1)
    z = split.sample_latents(300, seed=0)
    x = split.decode(z)
    np.testing.assert_array_equal(x, alone.decode(z))  # each row's arithmetic is unchanged
    mu, logvar = split.encode(x)
    ref_mu, ref_logvar = alone.encode(x)
    np.testing.assert_array_equal(mu, ref_mu)
    np.testing.assert_array_equal(logvar, ref_logvar)
    dec = split._runner("decoder")
    assert isinstance(dec, runners.SplitRunner) and isinstance(alone._runner("decoder"), SessionRunner)
    assert runners._workers is not None and runners._workers_size >= 2  # one pool for every graph


def test_small_batches_go_to_a_second_session_made_once() -> None:
    from vaegen_infer.runners import SplitRunner

    class Fake:
        def __init__(self, tag: str) -> None:
            self.tag, self.rows = tag, []

        def run(self, outputs, feeds):  # type: ignore[no-untyped-def]
            (x,) = feeds.values()
            self.rows.append(len(x))
            return [x * (2.0 if self.tag == "small" else 1.0)]

    made: list[Fake] = []
    main = Fake("main")
    runner = SplitRunner(main, parts=2, min_rows=32, small_session=lambda: made.append(Fake("small")) or made[-1])
    x = np.ones((63, 3), np.float32)
    np.testing.assert_array_equal(runner.run(["y"], {"x": x})[0], 2 * x)  # under two chunks: the small session
    runner.run(["y"], {"x": x[:1]})
    assert len(made) == 1 and made[0].rows == [63, 1] and main.rows == []
    np.testing.assert_array_equal(runner.run(["y"], {"x": np.ones((64, 3), np.float32)})[0], np.ones((64, 3)))
    assert sum(main.rows) == 64 and len(main.rows) == 2 and made[0].rows == [63, 1]


def test_small_batch_session_options() -> None:
    opts = providers.session_options(ProviderRequest("cpu", threads=2, parallel="batch"), small_batch=True)
    assert opts.intra_op_num_threads == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_small_batches_on_intra_op_threads_give_the_one_thread_results() -> None:
    two = vi.load("mnist-vae", providers="cpu", threads=2)
    one = vi.load("mnist-vae", providers="cpu", threads=1)
    z = two.sample_latents(8, seed=0)
    np.testing.assert_array_equal(two.decode(z), one.decode(z))  # MLAS splits rows and columns, not sums
    assert two._runner("decoder").small_batch_session() is not two._runner("decoder").session


def test_split_chunks_cover_the_batch_once() -> None:
    from vaegen_infer.runners import SplitRunner

    runner = SplitRunner(object(), parts=2, min_rows=32)
    assert runner.chunks(63) == [(0, 63)]  # under two chunks: not split
    for n in (64, 65, 511, 512, 4096, 4097):
        spans = runner.chunks(n)
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert all(hi - lo >= 1 for lo, hi in spans) and all(hi - lo >= 32 for lo, hi in spans[:-1])
    assert len(runner.chunks(4096)) == 8  # about four per thread
    assert SplitRunner(object(), parts=1, min_rows=32).chunks(4096) == [(0, 4096)]


def test_small_batches_alone_build_one_session_per_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    from vaegen_infer import model as model_module

    made: list[bool] = []
    real = model_module.create_session

    def counting(data: bytes, request: ProviderRequest, small_batch: bool = False):  # type: ignore[no-untyped-def]
        made.append(small_batch)
        return real(data, request, small_batch)

    monkeypatch.setattr(model_module, "create_session", counting)
    g = vi.load("mnist-vae", providers="cpu", threads=2)
    assert made == []  # load() makes no session
    for seed in range(3):
        g.sample(1, seed=seed)
    assert made == [True]  # only the small-batch session; the split session is never needed
    g.sample(256, seed=0)
    assert made == [True, False]
    assert g.session_for("decoder", 1) is not g.session_for("decoder", 256)
    with pytest.raises(UsageError, match="unknown graph"):
        g.session_for("prior", 1)


def test_small_batch_threads_one_means_no_pool_and_the_same_images() -> None:
    opts = providers.session_options(ProviderRequest("cpu", threads=2, small_batch_threads=1), small_batch=True)
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(UsageError, match="small_batch_threads"):
        ProviderRequest("cpu", small_batch_threads=0)
    one = vi.load("mnist-vae", providers="cpu", threads=2, small_batch_threads=1)
    two = vi.load("mnist-vae", providers="cpu", threads=2)
    z = two.sample_latents(8, seed=0)
    np.testing.assert_array_equal(one.decode(z), two.decode(z))
