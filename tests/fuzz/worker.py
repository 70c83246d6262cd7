"""One target in one process: `python -m tests.fuzz.worker TARGET RUNS [--engine atheris|random]`.

Prints `FUZZ-SUMMARY {json}` at the end (random engine) and keeps `<artifacts>.stats.json` up to date every
10,000 inputs (both engines; libFuzzer ends the process itself after -runs). RSS is sampled from
/proc/self/status: VmRSS now, VmHWM the peak.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import traceback
from pathlib import Path

SAMPLE_EVERY = 10_000


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    now = peak = 0.0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return round(now, 1), round(peak, 1)


class Stats:
    def __init__(self, path: Path, target: str, engine: str) -> None:
        self.path = path
        self.data = {"target": target, "engine": engine, "inputs": 0, "rss_samples_mb": [], "peak_rss_mb": 0.0,
                     "first_rss_mb": None}

    def count(self) -> None:
        data = self.data
        data["inputs"] += 1
        if data["inputs"] % SAMPLE_EVERY == 0:
            now, peak = rss_mb()
            if data["first_rss_mb"] is None:
                data["first_rss_mb"] = now
            data["rss_samples_mb"].append(now)
            data["peak_rss_mb"] = peak
            self.path.write_text(json.dumps(data))

    def finish(self) -> dict:
        now, peak = rss_mb()
        self.data["peak_rss_mb"] = peak
        self.data["last_rss_mb"] = now
        self.path.write_text(json.dumps(self.data))
        return self.data


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    """A few byte-level edits of a real input: flips, interesting values, inserts, deletes, splices, cuts."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(9)
        n = len(out)
        at = rng.randrange(n + 1)
        if op == 0 and n:
            out[min(at, n - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            out[min(at, n - 1)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x0A, 0x0D, 0x20, 0x3A, 0x3B, 0x22, 0x3C))
        elif op == 2:
            out[at:at] = rng.choice((b"\r\n", b"\n", b"\r\n\r\n", b":", b";", b"\"", b"<", b"%00", b"\x00", b" ",
                                     b"Content-Length: 99999\r\n", b"9" * rng.randint(1, 30), b"[::1]", b",",
                                     b"\xff\xff\xff\xff", b"\x80\x00"))
        elif op == 3 and n:
            del out[at : at + rng.randint(1, 64)]
        elif op == 4 and seeds:
            other = rng.choice(seeds)
            if other:
                start = rng.randrange(len(other))
                out[at:at] = other[start : start + rng.randint(1, 256)]
        elif op == 5 and n:
            del out[rng.randrange(n):]
        elif op == 6 and n >= 2:
            width = rng.choice((1, 2, 4))
            value = rng.choice((0, 1, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x8000, rng.getrandbits(32)))
            out[at : at + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big")
        elif op == 7 and n:
            start = rng.randrange(n)
            chunk = out[start : start + rng.randint(1, 32)]
            out[at:at] = chunk * rng.randint(1, 20)
        elif op == 8:
            out[at:at] = rng.randbytes(rng.randint(1, 16))
    return bytes(out[:262144])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("runs", type=int)
    parser.add_argument("--engine", default="random")
    parser.add_argument("--artifacts", default="fuzz-artifacts/target")
    parser.add_argument("--rss-limit-mb", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    artifacts = Path(args.artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    stats = Stats(artifacts.with_suffix(".stats.json"), args.target, args.engine)
    if args.engine == "atheris":
        return _atheris(args, artifacts, stats)
    return _random(args, artifacts, stats)


def _load(target_name: str):
    from tests.fuzz import corpus, targets

    if target_name == "session":
        session = targets.Session()

        def run(data: bytes) -> None:
            if data:
                session.feed(targets.LINKTYPES[data[0] % len(targets.LINKTYPES)], data[1:])
            if session.frame % 1000 == 0:
                session.check()

        return run, corpus.seeds("session")
    return targets.TARGETS[target_name], corpus.seeds(target_name)


def _atheris(args, artifacts: Path, stats: Stats) -> int:
    import atheris

    with atheris.instrument_imports(include=["sipwatch"]):
        run, seeds = _load(args.target)
    corpus_dir = artifacts.parent / f"corpus-{args.target}"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (corpus_dir / hashlib.sha1(seed).hexdigest()).write_bytes(seed)

    def one(data: bytes) -> None:
        stats.count()
        run(data)

    max_len = 262144 if args.target == "capture" else 8192
    argv = [sys.argv[0], f"-runs={args.runs}", f"-rss_limit_mb={args.rss_limit_mb}", "-timeout=30",
            f"-max_len={max_len}", f"-artifact_prefix={artifacts}/", f"-seed={args.seed}", "-print_final_stats=1",
            str(corpus_dir)]
    atheris.Setup(argv, one)
    atheris.Fuzz()  # libFuzzer exits the process
    return 0


def _random(args, artifacts: Path, stats: Stats) -> int:
    run, seeds = _load(args.target)
    seeds = [s for s in seeds if s is not None] or [b""]
    rng = random.Random(args.seed)
    crashes = 0
    for i in range(args.runs):
        base = seeds[i % len(seeds)] if i < len(seeds) else rng.choice(seeds)
        data = base if i < len(seeds) else mutate(rng, base, seeds)
        stats.count()
        try:
            run(data)
        except Exception:  # the point of the run: record every crash and go on (the first 20 kept)
            crashes += 1
            if crashes <= 20:
                name = f"crash-{hashlib.sha1(data).hexdigest()}"
                (artifacts / name).write_bytes(data)
                (artifacts / f"{name}.txt").write_text(traceback.format_exc())
    summary = stats.finish()
    summary["crashes"] = crashes
    print("FUZZ-SUMMARY " + json.dumps({k: v for k, v in summary.items() if k != "rss_samples_mb"}
                                       | {"rss_first_last": [summary["first_rss_mb"], summary.get("last_rss_mb")]}))
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
