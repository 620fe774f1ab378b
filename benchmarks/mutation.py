"""Mutation testing of the runtime's core (issue 18): does the test suite notice deliberate mistakes?

    python benchmarks/mutation.py run [--modules latent,priors,io,bundle,manifest,model] [--until HH:MM]
                                      [--max-minutes M] [--max-children 2] [--nice 19]
    python benchmarks/mutation.py report

`run` drives mutmut 3 (`pip install -e '.[dev]'`; configured in pyproject.toml `[tool.mutmut]`) module
by module, smallest first. mutmut copies the package into `mutants/`, makes every mutant there (an
operator, a constant, an argument changed), runs the selected tests once to record which tests reach
each function (its stats phase), then runs each mutant in a forked process against only those tests.
Its state stays in `mutants/`, and the results (a .meta file per module) are also saved to
benchmarks/results/mutation-state.json.gz, which is committed: so `run` resumes, in a fresh checkout
too (mutmut keeps the result of every mutant whose function has not changed). Each call passes mutmut
only the mutants without a result yet. `--until` / `--max-minutes` stop mutmut (SIGINT, then
SIGKILL) at a wall-clock limit; the mutants it finished keep their results. Runs are niced, since the machine is shared.

`report` (also written after every `run`) reads `mutants/**/*.meta` and writes
benchmarks/results/mutation.{json,md}: per module the mutants made, run, killed, survived, and the
score = (killed + timed out) / (run - equivalent); every survivor with its diff, marked equivalent
(with the reason, from EQUIVALENT below) or not. A module with mutants not yet run is marked partial.
For model.py only the operations are in scope (MODEL_OPERATIONS): session plumbing and CUDA paths
are tested with fakes elsewhere and are not the maths or the contracts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MUTANTS = ROOT / "mutants"
STATE = RESULTS / "mutation-state.json.gz"  # mutmut's per-mutant results, so a fresh checkout resumes

# Smallest first, so a short run finishes whole modules.
MODULES: dict[str, str] = {
    "latent": "vaegen_infer/latent.py",
    "io": "vaegen_infer/io.py",
    "bundle": "vaegen_infer/bundle.py",
    "priors": "vaegen_infer/priors.py",
    "manifest": "vaegen_infer/manifest.py",
    "model": "vaegen_infer/model.py",
}
_SEP = "ǁ"  # mutmut's class/method separator in mutant names
MODEL_OPERATIONS = (
    "decode", "decode_logits", "encode", "iter_latents", "sample_latents", "iter_samples", "sample",
    "label_index", "score", "sample_per_label", "reconstruct", "as_latents", "interpolate",
    "interpolate_latents", "attribute", "amounts", "shift_latents", "shift", "dims_by_importance",
    "traversal_dims", "traversal_offsets", "traverse_latents", "traverse", "latent_pair", "manifold",
    "_check_latents", "check_images",
)  # fmt: skip
MODEL_FUNCTIONS = ("check_count",)

# mutmut exit codes -> status (mutmut/stats.py)
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", 37: "type check", -11: "segfault",
          -9: "segfault", 2: "interrupted", None: "not run"}  # fmt: skip
PENDING = ("not run", "interrupted")
_COUNTED = ("killed", "timeout", "survived", "no tests")

# Survivors explained by hand, one line each (benchmarks/mutation_explained.json): "equivalent" ones
# cannot change behaviour (left out of the score's denominator); "accepted" ones change it only where
# no user relies on it (still counted as survived).
_EXPLAINED = json.loads((ROOT / "benchmarks" / "mutation_explained.json").read_text())
EQUIVALENT: dict[str, str] = _EXPLAINED["equivalent"]
ACCEPTED: dict[str, str] = _EXPLAINED["accepted"]


def module_of(name: str) -> str:
    return name.split(".")[1]


def in_scope(name: str) -> bool:
    mod = module_of(name)
    if mod not in MODULES:
        return False
    if mod != "model":
        return True
    func = name.split(".", 2)[2].partition("__mutmut_")[0]
    ops = {f"x{_SEP}Model{_SEP}{op}" for op in MODEL_OPERATIONS} | {f"x_{f}" for f in MODEL_FUNCTIONS}
    return func in ops


def load_results() -> dict[str, int | None]:
    """mutant name -> mutmut exit code (None: not run yet), for every generated mutant in scope."""
    out: dict[str, int | None] = {}
    for path in MODULES.values():
        meta = MUTANTS / (path + ".meta")
        if meta.is_file():
            codes = json.loads(meta.read_text())["exit_code_by_key"]
            out.update({k: v for k, v in codes.items() if in_scope(k)})
    return out


def patterns_for(module: str) -> list[str]:
    """fnmatch patterns selecting a module's in-scope mutants (for the first run, before any .meta)."""
    if module != "model":
        return [f"vaegen_infer.{module}.*"]
    return [f"vaegen_infer.model.x{_SEP}Model{_SEP}{op}__mutmut_*" for op in MODEL_OPERATIONS] + [
        f"vaegen_infer.model.x_{f}__mutmut_*" for f in MODEL_FUNCTIONS
    ]


def run_module(
    module: str, deadline: float, max_children: int, nice: int, log: Path, retest: bool = False
) -> dict[str, Any]:
    results = load_results()
    mine = {k: v for k, v in results.items() if module_of(k) == module}
    again = PENDING + (("survived", "no tests", "suspicious", "segfault") if retest else ())
    if mine:
        names = sorted(k for k, v in mine.items() if STATUS.get(v, "suspicious") in again and k not in EQUIVALENT)
        if not names:
            return {"module": module, "skipped": "every mutant already has a result"}
    else:
        names = patterns_for(module)  # nothing generated yet: mutmut makes the mutants, then runs these
    before = sum(STATUS.get(v, "?") not in PENDING for k, v in mine.items() if k not in names)
    cmd = ["nice", "-n", str(nice), "mutmut", "run", "--max-children", str(max_children), *names]
    env = dict(os.environ)
    env.setdefault("VAEGEN_INFER_TEST_MNIST", str(_mnist_dir()))
    start = time.time()
    print(f"[{_now()}] {module}: mutmut run on {len(names)} {'mutants' if mine else 'patterns'} (log {log})")
    with log.open("a") as f:
        f.write(f"\n==== {_now()} {module}: {' '.join(cmd[:6])} ... ({len(names)} names)\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        stopped = False
        while proc.poll() is None:
            if time.time() >= deadline:
                stopped = True
                os.killpg(proc.pid, signal.SIGINT)  # mutmut stops its workers; finished results are saved
                try:
                    proc.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                break
            time.sleep(2)
    after = load_results()
    done = sum(STATUS.get(v, "?") not in PENDING for k, v in after.items() if module_of(k) == module)
    return {
        "module": module,
        "started": dt.datetime.fromtimestamp(start, dt.timezone.utc).isoformat(timespec="seconds"),
        "minutes": round((time.time() - start) / 60, 1),
        "mutants_finished": done - before,
        "retest_of_survivors": retest,
        "stopped_at_limit": stopped,
        "exit_code": proc.returncode,
        "max_children": max_children,
        "nice": nice,
    }


def _mnist_dir() -> Path:
    for candidate in (ROOT.parent / "shared" / "data" / "mnist", ROOT.parents[1] / "shared" / "data" / "mnist"):
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "data" / "mnist"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S")


def _diff(name: str) -> str:
    """The changed lines of a mutant (what `mutmut show` prints), read in-process from mutants/."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = os.getcwd()
    os.chdir(ROOT)  # mutmut reads mutants/ relative to the project root
    try:
        text = get_diff_for_mutant(name, path=MODULES[module_of(name)])
    finally:
        os.chdir(cwd)
    lines = [ln for ln in text.splitlines() if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
    return "\n".join(lines) or text.strip()


def report(runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / "mutation.json"
    previous = json.loads(json_path.read_text()) if json_path.is_file() else {}
    all_runs = list(previous.get("runs", [])) + list(runs or [])
    earlier_runs = list(previous.get("earlier_runs", []))
    old_diffs = {s["name"]: s["diff"] for s in previous.get("survivors", [])}
    results = load_results()
    modules: dict[str, Any] = {}
    survivors: list[dict[str, Any]] = []
    for module, path in MODULES.items():
        mine = {k: v for k, v in results.items() if module_of(k) == module}
        counts: dict[str, int] = {}
        for k, v in mine.items():
            s = STATUS.get(v, "suspicious")
            if s in PENDING and k in EQUIVALENT:
                s = "survived"  # explained as equivalent, so `run` does not run it again: it counts as run
            counts[s] = counts.get(s, 0) + 1
        ran = sum(n for s, n in counts.items() if s not in PENDING)
        surv = sorted(
            k
            for k, v in mine.items()
            if STATUS.get(v) in ("survived", "no tests", "suspicious", "segfault")
            or (STATUS.get(v) in PENDING and k in EQUIVALENT)
        )
        equivalent = [k for k in surv if k in EQUIVALENT]
        detected = counts.get("killed", 0) + counts.get("timeout", 0)
        denom = ran - len(equivalent)
        minutes = sum(r.get("minutes", 0) for r in all_runs if r.get("module") == module)
        modules[module] = {
            "file": path,
            "mutants": len(mine),
            "run": ran,
            "killed": counts.get("killed", 0),
            "timeout": counts.get("timeout", 0),
            "survived": counts.get("survived", 0),
            "no_tests": counts.get("no tests", 0),
            "other": {s: n for s, n in counts.items() if s not in (*_COUNTED, *PENDING)},
            "equivalent": len(equivalent),
            "explained": len(equivalent) + sum(k in ACCEPTED for k in surv),
            "not_run": sum(counts.get(s, 0) for s in PENDING),
            "score": round(detected / denom, 4) if denom > 0 else None,
            "complete": bool(mine) and ran == len(mine),
            "run_minutes": round(minutes, 1),
        }
        for k in surv:
            diff = old_diffs.get(k) or _diff(k)
            status = STATUS.get(mine[k], "suspicious")
            survivors.append({"name": k, "module": module, "status": "survived" if status in PENDING else status,
                              "equivalent": EQUIVALENT.get(k), "accepted": ACCEPTED.get(k), "diff": diff})  # fmt: skip
    partial = not all(m["complete"] for m in modules.values())
    out = {
        "partial": partial,
        "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/mutation.py run",
        "mutmut": _mutmut_version(),
        "modules": modules,
        "survivors": survivors,
        "runs": all_runs,
        "earlier_runs": earlier_runs,  # earlier campaigns (state since lost), for the record only
    }
    json_path.write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / "mutation.md").write_text(markdown(out))
    (RESULTS / "mutation-readme.md").write_text(readme_paragraph(out))
    return out


def save_state() -> None:
    """Keep every module's mutmut results (mutants/**/*.meta: exit code per mutant, and a hash per
    function) in STATE, committed beside the report: mutants/ is not (it holds a copy of the package
    and its bundles), so without this a fresh checkout would start the whole run again."""
    files = {path + ".meta": json.loads((MUTANTS / (path + ".meta")).read_text())
             for path in MODULES.values() if (MUTANTS / (path + ".meta")).is_file()}  # fmt: skip
    if files:
        data = json.dumps({"mutmut": _mutmut_version(), "files": files}, sort_keys=True).encode()
        STATE.write_bytes(gzip.compress(data, mtime=0))  # mtime 0: same results, same bytes


def restore_state() -> bool:
    """Before the first mutmut call in a fresh checkout: put the saved .meta files back. mutmut then
    keeps the result of every mutant whose function is unchanged (it compares the function hashes)
    and runs only the new or changed ones. Returns whether anything was restored."""
    if not STATE.is_file() or any((MUTANTS / (p + ".meta")).is_file() for p in MODULES.values()):
        return False
    saved = json.loads(gzip.decompress(STATE.read_bytes()))
    for name, meta in saved["files"].items():
        target = MUTANTS / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(meta))
    print(f"[{_now()}] restored {len(saved['files'])} modules' results from {STATE.relative_to(ROOT)}")
    return True


def start_campaign() -> None:
    """No mutmut state here (a fresh checkout): every mutant runs again, so the run times of the report
    on disk describe an earlier campaign. Keep them aside, so that the new table adds up this one's."""
    json_path = RESULTS / "mutation.json"
    if not json_path.is_file():
        return
    previous = json.loads(json_path.read_text())
    earlier = list(previous.get("earlier_runs", [])) + list(previous.get("runs", []))
    previous.update(runs=[], earlier_runs=earlier)
    json_path.write_text(json.dumps(previous, indent=2) + "\n")


def readme_paragraph(r: dict[str, Any]) -> str:
    """The README's "Mutation testing" paragraph (Development section): command, table, what is left."""
    done = [m for m in r["modules"].values() if m["run"] > 0]
    left = [m["file"] for m in r["modules"].values() if not m["complete"]]
    lines = [
        "### Mutation testing",
        "",
        "[mutmut](https://mutmut.readthedocs.io) 3 changes the runtime's core one small mistake at a time (an",
        "operator, a constant, an argument) and runs the tests that reach the changed function; a mutant the",
        "tests miss is a hole in them. Install the dev extra, then run or resume it (state in `mutants/`, results",
        "also in `benchmarks/results/mutation-state.json.gz`, so a fresh checkout resumes too):",
        "",
        "```bash",
        "python benchmarks/mutation.py run --until 06:00    # niced; stops at that UTC time, resumable",
        "python benchmarks/mutation.py report               # benchmarks/results/mutation.{json,md}",
        "```",
        "",
        "| module | mutants run / made | killed | survived (explained) | score | run time |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in done:
        score = "-" if m["score"] is None else f"{100 * m['score']:.1f}%"
        surv = m["survived"] + m["no_tests"]
        lines.append(
            f"| `{m['file']}` | {m['run']} / {m['mutants']} | {m['killed'] + m['timeout']} | "
            f"{surv} ({m['equivalent']} equivalent) | {score} | {m['run_minutes']} min |"
        )
    lines += [
        "",
        "Score = (killed + timed out) / (run - equivalent); every survivor, and why it is equivalent (cannot",
        "change behaviour) or accepted (changes it only where no user relies on it), is listed in",
        "`benchmarks/results/mutation.md`, from `benchmarks/mutation_explained.json`. Each mutant runs only the",
        "tests that reach the changed function, fastest first, stopping at the first failure (tests/conftest.py);",
        "one that only slows the tests down gets 4x their time plus two minutes, then counts as timed out. Run",
        "times are on 2 shared cores at `nice 19`, while other work ran. After adding tests, `run --retest`",
        "runs the survivors again; a new test file must also be listed in `pytest_add_cli_args_test_selection`",
        "(pyproject.toml), and mutmut treats a change of that list as a reason to run every mutant again.",
    ]
    if left:
        lines += ["", f"Not run yet (or not finished): {', '.join(f'`{f}`' for f in left)}."]
    return "\n".join(lines) + "\n"


def _mutmut_version() -> str:
    try:
        from importlib.metadata import version

        return version("mutmut")
    except Exception:  # not installed: the report is still readable
        return "not installed"


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Mutation testing" + (" (PARTIAL: modules with mutants not yet run are marked)" if r["partial"] else ""),
        "",
        f"mutmut {r['mutmut']}, `{r['command']}`, updated {r['updated']}. Score = (killed + timed out) / "
        "(run - equivalent); survivors are listed below with their diff.",
        "",
        "| module | mutants | run | killed | timeout | survived | no tests | equivalent | explained | score | time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in r["modules"].values():
        score = "-" if m["score"] is None else f"{100 * m['score']:.1f}%"
        state = "" if m["complete"] else (" (not run)" if m["run"] == 0 else " (partial)")
        lines.append(
            f"| {m['file']}{state} | {m['mutants'] or '-'} | {m['run']} | {m['killed']} | {m['timeout']} | "
            f"{m['survived']} | {m['no_tests']} | {m['equivalent']} | {m['explained']} | {score} | "
            f"{m['run_minutes']} min |"
        )
    lines += ["", "## Survivors", ""]
    if not r["survivors"]:
        lines.append("None in the modules run.")
    for s in r["survivors"]:
        if s["equivalent"]:
            tag = f"equivalent: {s['equivalent']}"
        elif s.get("accepted"):
            tag = f"{s['status']}, explained: {s['accepted']}"
        else:
            tag = f"**{s['status']}**, not yet killed or explained"
        lines += [f"- `{s['name']}` ({tag})", "", "  ```diff", *("  " + ln for ln in s["diff"].splitlines()), "  ```"]
    lines += ["", "## Runs", "", "| started (UTC) | module | minutes | mutants finished | stopped at limit |",
              "|---|---|---:|---:|---|"]  # fmt: skip
    for run in r["runs"]:
        if "started" in run:
            lines.append(
                f"| {run['started']} | {run['module']} | {run['minutes']} | {run['mutants_finished']} | "
                f"{'yes' if run['stopped_at_limit'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def _deadline(until: str | None, max_minutes: float | None) -> float:
    limits = [float("inf")]
    if max_minutes is not None:
        limits.append(time.time() + 60 * max_minutes)
    if until:
        now = dt.datetime.now(dt.timezone.utc)
        h, m = (int(p) for p in until.split(":"))
        t = now.replace(hour=h, minute=m, second=0, microsecond=0)
        if t <= now:
            t += dt.timedelta(days=1)
        limits.append(t.timestamp())
    return min(limits)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) mutmut, then write the report")
    r.add_argument("--modules", default=",".join(MODULES), help=f"comma-separated, of {', '.join(MODULES)}")
    r.add_argument("--until", help="stop at this UTC time, HH:MM")
    r.add_argument("--max-minutes", type=float, help="stop after this many minutes")
    r.add_argument("--max-children", type=int, default=2, help="mutants run at once (default 2)")
    r.add_argument("--nice", type=int, default=19)
    r.add_argument("--retest", action="store_true", help="also rerun survivors not marked equivalent (after new tests)")
    sub.add_parser("report", help="write benchmarks/results/mutation.{json,md} from mutants/")
    args = p.parse_args(argv)
    if args.cmd == "report":
        out = report()
        save_state()
        print(markdown(out))
        return 0
    wanted = [m.strip() for m in args.modules.split(",") if m.strip()]
    bad = [m for m in wanted if m not in MODULES]
    if bad:
        p.error(f"unknown module(s) {', '.join(bad)}; choose from {', '.join(MODULES)}")
    deadline = _deadline(args.until, args.max_minutes)
    if not (MUTANTS / "mutmut-stats.json").is_file() and not restore_state():
        start_campaign()
    MUTANTS.mkdir(exist_ok=True)
    log = MUTANTS / "run.log"  # mutmut's own output, beside its state
    for module in wanted:
        if time.time() >= deadline:
            print(f"[{_now()}] time limit reached before {module}")
            break
        info = run_module(module, deadline, args.max_children, args.nice, log, args.retest)
        print(f"[{_now()}] {info}")
        report([info] if "minutes" in info else [])  # after each module, so a stopped run still leaves its results
        save_state()
    print(markdown(report()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
