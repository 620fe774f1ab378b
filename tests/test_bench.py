"""The benchmarks run and write well-formed results. Nothing here asserts a timing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import vaegen_infer as vi
from vaegen_infer.bench import OPERATIONS, bench_model, repeats_for, summarize, write_report
from vaegen_infer.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_bench_model_and_its_files(tmp_path: Path) -> None:
    g = vi.load("mnist-vae", providers="cpu", threads=1)
    report = bench_model(g, OPERATIONS, [1, 8], warmup=1, min_repeats=2, max_repeats=3, budget_s=0.0)
    assert [(t.operation, t.batch) for t in report.timings] == [(op, b) for b in (1, 8) for op in OPERATIONS]
    for t in report.timings:
        assert 2 <= t.repeats <= 3
        assert 0 < t.p50_ms <= t.p90_ms <= t.p99_ms
        assert t.images_per_s > 0
    assert report.meta["provider"] == "cpu" and report.meta["threads"] == 1
    json_path, md_path = write_report(report, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert len(data["timings"]) == 8 and data["meta"]["onnxruntime"]
    assert md_path.read_text().count("| vaegen-infer |") == 8


def test_summary_and_repeat_arithmetic() -> None:
    t = summarize("e", "decode", 4, [0.001, 0.002, 0.003, 0.004])
    assert t.p50_ms == pytest.approx(2.5) and t.images_per_s == pytest.approx(1600)
    assert repeats_for(0.5, budget_s=1.0, min_repeats=5, max_repeats=100) == 5
    assert repeats_for(0.001, budget_s=1.0, min_repeats=5, max_repeats=100) == 100
    assert repeats_for(0.02, budget_s=1.0, min_repeats=5, max_repeats=100) == 50


def test_cli_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b"
    args = ["bench", "--ops", "decode,sample-png", "--batches", "1,8", "--warmup", "1", "--budget", "0"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--min-repeats", "2", "--max-repeats", "2", "--providers", "cpu", "-o", str(out)])
    assert exit_info.value.code == 0
    assert "| vaegen-infer | sample-png | 8 |" in capsys.readouterr().out
    assert len(json.loads((out / "bench.json").read_text())["timings"]) == 4


@pytest.mark.parametrize(
    "args", [["--ops", "decode,resize"], ["--batches", "1,x"], ["--batches", "0"]], ids=["op", "batch", "zero"]
)
def test_cli_bench_refuses_bad_choices(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_flop_counter_knows_the_shipped_graphs() -> None:
    pytest.importorskip("onnx")
    from benchmarks.flops import flops_per_item, graph_flops

    # decoder: 2 x (32*256 + 256*3136 + 64*7*7 * 32*4*4 + 32*14*14 * 1*4*4) multiply-adds
    assert flops_per_item(ROOT / "exported" / "mnist-vae" / "decoder.onnx") == 5_033_984
    # encoder: 2 x (32*14*14 * 1*4*4 + 64*7*7 * 32*4*4 + 3136*256 + 256*(2*32))  # mu and logvar
    assert flops_per_item(ROOT / "exported" / "mnist-vae" / "encoder.onnx") == 5_050_368
    assert sum(graph_flops(ROOT / "exported" / "mnist-vae" / "decoder.onnx", batch=3).values()) == 3 * 5_033_984


def test_latency_benchmark_writes_its_results(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "latency.py"), "--quick", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads((tmp_path / "latency.json").read_text())
    engines = {t["engine"] for t in data["timings"]}
    import importlib.util

    openvino = importlib.util.find_spec("openvino") is not None
    peers = {"onnxruntime-default", "torch-eager", "torch-eager-1t"}
    peers |= {"openvino-latency", "openvino-throughput"} if openvino else set()
    assert engines == {"vaegen-infer", "vaegen-infer-int8", *peers}
    assert {t["batch"] for t in data["timings"]} == {1, 8}
    assert data["gemm"]["gflops"] > 0 and data["flops_per_item"]["decoder"] == 5_033_984
    assert {r["peer"] for r in data["ratios"]} == {"vaegen-infer-int8", *peers}
    assert data["end_to_end"]["vaegen-infer"]["peak_rss_mb_median"] > 0
    assert data["end_to_end"]["torch-script"]["wall_s_median"] > 0
    # issue 17: ours / raw ORT for decode and encode at batches 1 and 8 (and / OpenVINO), the PNG path;
    # issue 6: four more. (int8's goal is at batch 512, not run by --quick.)
    assert {g["met"] for g in data["goals"]} <= {True, False}
    assert len(data["goals"]) == 4 + (4 if openvino else 0) + 1 + 4
    picture = data["end_to_end"]["picture"]
    assert picture["png_bytes_reproducible"] is True and picture["png_over_npy"] > 0
    md = (tmp_path / "latency.md").read_text()
    assert "## Goals" in md and "## decode" in md and "## End to end" in md
    for name in ("latency.png", "latency-encode.png"):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG" and img.size[0] > 300


def test_mutation_results_survive_a_fresh_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # benchmarks/mutation.py keeps mutmut's per-module results in a committed file and puts them back
    # when mutants/ is missing, so a long run resumes instead of starting again
    from benchmarks import mutation

    mutants, state = tmp_path / "mutants", tmp_path / "results" / "mutation-state.json.gz"
    state.parent.mkdir()
    monkeypatch.setattr(mutation, "MUTANTS", mutants)
    monkeypatch.setattr(mutation, "STATE", state)
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    meta = {"exit_code_by_key": {"vaegen_infer.io.x_save_npy__mutmut_1": 1}, "hash_by_function_name": {"x": "h"}}
    (mutants / "vaegen_infer").mkdir(parents=True)
    (mutants / "vaegen_infer" / "io.py.meta").write_text(json.dumps(meta))
    mutation.save_state()
    first = state.read_bytes()
    mutation.save_state()
    assert state.read_bytes() == first  # same results, same bytes: no churn in git
    assert mutation.restore_state() is False  # mutants/ has results: nothing to restore
    shutil.rmtree(mutants)  # a fresh checkout
    assert mutation.restore_state() is True
    assert json.loads((mutants / "vaegen_infer" / "io.py.meta").read_text()) == meta
    assert set(mutation.load_results()) == {"vaegen_infer.io.x_save_npy__mutmut_1"}


@pytest.mark.parametrize(
    ("lo", "hi", "want"),
    [
        (0, 4316, [0, 1000, 2000, 3000, 4000, 5000]),
        (0, 0.14, [0.0, 0.05, 0.1, 0.15]),
        (-3, 7, [-4, -2, 0, 2, 4, 6, 8]),
        (30_000, 210_000, [0, 50_000, 100_000, 150_000, 200_000, 250_000]),
    ],
)
def test_chart_axes_are_labelled_at_round_values(lo: float, hi: float, want: list[float]) -> None:
    from vaegen_infer.plots import nice_ticks

    assert nice_ticks(lo, hi) == pytest.approx(want)


def test_log_axes_get_one_two_five_ticks_or_powers_of_ten() -> None:
    from vaegen_infer.plots import _log_ticks

    assert _log_ticks(0.3, 30) == pytest.approx([0.5, 1, 2, 5, 10, 20])
    assert _log_ticks(0.05, 120) == pytest.approx([0.1, 1, 10, 100])  # 1-2-5 would give 11 ticks
