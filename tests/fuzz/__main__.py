"""The long fuzz run: `python -m tests.fuzz [--runs N] [--engine atheris|random] [--targets a,b]`.

Each target runs in its own process. With atheris (libFuzzer, coverage-guided) the process is
`python -m tests.fuzz.worker`, seeded with real frames and messages (tests/fuzz/corpus.py); libFuzzer reports
its peak RSS and stops at -rss_limit_mb. With `--engine random` the same worker mutates the seeds itself
and samples its RSS every 10,000 inputs. Crashing inputs are written to --artifacts; the summary (inputs,
crashes, peak RSS per target) is printed as a Markdown table for docs/fuzzing.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# share of --runs per target: the cheap parsers get more inputs, the whole-file pipeline fewer
SHARES = {
    "frame": 0.14, "frames": 0.10, "session": 0.16, "tcp": 0.08, "framer": 0.08, "sip": 0.14, "sdp": 0.07,
    "rtp": 0.07, "rtcp": 0.07, "media": 0.06, "capture": 0.03,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs over all targets (default 1,000,000)")
    parser.add_argument("--engine", choices=("atheris", "random"), default=None,
                        help="default: atheris when it imports, else random")
    parser.add_argument("--targets", default=",".join(SHARES), help="comma-separated targets")
    parser.add_argument("--artifacts", default="fuzz-artifacts", help="where crashing inputs are written")
    parser.add_argument("--rss-limit-mb", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    engine = args.engine or ("atheris" if _has_atheris() else "random")
    targets = [t for t in args.targets.split(",") if t]
    share = sum(SHARES[t] for t in targets)
    artifacts = Path(args.artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    results = []
    for target in targets:
        runs = max(1, round(args.runs * SHARES[target] / share))
        print(f"fuzz: {target}: {runs} inputs ({engine})", flush=True)
        results.append(_run_target(target, runs, engine, artifacts, args))
        print(f"fuzz: {target}: {json.dumps(results[-1])}", flush=True)
    total = sum(r.get("inputs", 0) for r in results)
    print("\n| target | inputs | crashes | peak RSS (MB) | RSS first/last sample (MB) | seconds | exit |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        first_last = "/".join(str(x) for x in r["rss_first_last_mb"]) if r["rss_first_last_mb"] else "-"
        print(f"| {r['target']} | {r.get('inputs', 0):,} | {len(r['crash_files'])} | {r.get('peak_rss_mb', '?')} "
              f"| {first_last} | {r['seconds']} | {r['exit']} |")
    print(f"| **all** | **{total:,}** | **{sum(len(r['crash_files']) for r in results)}** | "
          f"{max((r.get('peak_rss_mb') or 0) for r in results)} | | {sum(r['seconds'] for r in results):.0f} | |")
    return 0 if all(r["exit"] == 0 and not r["crash_files"] for r in results) else 1


def _run_target(target: str, runs: int, engine: str, artifacts: Path, args) -> dict:
    """Run the worker until `runs` inputs are done; libFuzzer stops at a crash, so it is restarted (at most
    10 times) with the inputs that remain, the crash kept in the artifacts."""
    started = time.monotonic()
    done = restarts = peak = 0
    exits = []
    while done < runs and restarts <= 10:
        cmd = [sys.executable, "-m", "tests.fuzz.worker", target, str(runs - done), "--engine", engine,
               "--artifacts", str(artifacts / target), "--rss-limit-mb", str(args.rss_limit_mb),
               "--seed", str(args.seed + restarts)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        with open(artifacts / f"{target}.log", "a") as log:
            log.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\nexit {proc.returncode}\n")
        stats_file = artifacts / f"{target}.stats.json"
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        executed = _libfuzzer_stat(proc.stderr, "number_of_executed_units")
        done += executed if executed is not None else stats.get("inputs", 0)
        peak = max(peak, stats.get("peak_rss_mb", 0), _libfuzzer_stat(proc.stderr, "peak_rss_mb") or 0)
        samples = stats.get("rss_samples_mb") or []
        exits.append(proc.returncode)
        if proc.returncode == 0:
            break
        restarts += 1
    crash_dir = artifacts / target
    crashes = sorted(p.name for p in crash_dir.glob("*") if p.is_file() and not p.name.endswith(".txt"))
    return {"target": target, "inputs": done, "crash_files": crashes, "peak_rss_mb": peak,
            "rss_first_last_mb": [samples[0], samples[-1]] if samples else None,
            "seconds": round(time.monotonic() - started, 1), "exit": max(exits, default=0)}


def _libfuzzer_stat(stderr: str, name: str) -> int | None:
    for line in reversed(stderr.splitlines()):
        if line.startswith(f"stat::{name}:"):
            return int(line.split(":")[-1])
    return None


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
