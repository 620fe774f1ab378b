"""benchmarks/gpu_check.sh cannot run here (no GPU): its plan (--dry-run) and the parity logic can."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
# gpu_check.sh skips bundles with a label-conditioned decoder (no fp16 variant for those yet).
SHIPPED = sorted(
    p.name
    for p in (ROOT / "exported").iterdir()
    if (p / "model.json").is_file() and '"label_input"' not in (p / "model.json").read_text()
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


def test_dry_run_plans_every_step_in_order_and_runs_nothing(tmp_path: Path) -> None:
    out = tmp_path / "check"
    done = _run("--dry-run", "--out", str(out), "--python", "python3.99")
    assert done.returncode == 0, done.stderr
    plan = (out / "plan.txt").read_text().splitlines()
    names = [line.split()[1] for line in plan]
    want = ["gpu", "venv", "install", "versions", "cuda-tests", "bundles", *[f"fp16-{b}" for b in SHIPPED]]
    assert names == [*want, "parity", "latency"]
    text = "\n".join(plan)
    assert "python3.99 -m venv" in text  # --python is used
    assert "-e .[cuda,dev]" in text and "VAEGEN_INFER_REAL_CUDA=1" in text and "tests/test_cuda_real.py" in text
    assert "--providers cuda" in text and "--batches 1,8,64,512,4096" in text
    assert all(f"{out.resolve()}/bundles/{b}" in text for b in SHIPPED)
    limits = [int(line.split("(limit ")[1].split("s)")[0]) for line in plan]
    assert sum(limits) <= 8 * 60  # every step's time limit together: the whole check within 8 minutes
    assert not (out / "venv").exists() and (out / "summary.txt").read_text() == ""


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("--gpu", "0")
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: unknown option '--gpu' (use --out DIR, --python PYTHON or --dry-run)"
    )


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_without_a_gpu_it_stops_at_once_with_one_line(tmp_path: Path) -> None:
    done = _run("--out", str(tmp_path / "c"))
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: no NVIDIA GPU here (nvidia-smi not found)")
    assert not (tmp_path / "c").exists()


def test_parity_logic_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "parity.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_parity.py"), "--device", "cpu", "--out", str(out)]
    done = subprocess.run([*cmd, str(ROOT / "exported" / "mnist-vae-2d")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    checks = data["results"][0]["checks"]
    assert data["failed"] == [] and checks["cuda-fp16"]["skipped"].startswith("the bundle has no fp16 variant")
    for name in ("cuda-float32", "cuda-tf32", "cuda-graph"):
        assert checks[name]["provider"] == "cpu" and checks[name]["max_abs_diff"] == 0.0 and checks[name]["ok"]
