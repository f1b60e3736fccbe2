#!/usr/bin/env python
"""The demo end to end, as a user runs it: `mmhallu demo --no-progress` in a fresh folder, timed whole (wall time,
and peak RSS and CPU time of the command's process tree, as `/usr/bin/time -v` reports them), with each stage's
time from loop.json, each task's time from the two evaluations' manifests, and the scorecard of the compare report.
Runs after the first are checked against the first, and every run against --reference (a folder this script wrote
before): the same pairs, the same sampled captions, the same metrics in every result.json and the same scorecard.

    python scripts/bench_demo.py --out /tmp/demo-bench [--repeats 2] [--reference /tmp/demo-bench-earlier] [--user-home] [--quick]

Each run works in OUT/runN with `--out demo`, so the image paths written into pairs.jsonl and own_captions.jsonl are
the same text in every run and the files compare byte for byte. By default HOME is an empty folder of the run and
MMHALLU_CACHE, NLTK_DATA and XDG_CACHE_HOME are unset, as on a fresh machine (the shipped NLTK resources, a cold
CHAIR lemma table); --user-home keeps them. Target (docs/benchmarks.md): under 5 minutes on 2 cores, with the
scorecard of docs/demo.md. Results go to OUT/bench_demo.json; a summary is printed for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from mmhallu_eval.demo import DESIGNED_SCOPES
from mmhallu_eval.report.scorecard import format_scorecard

#: files of a demo run that must be identical between runs of the same code (relative to the demo's folder)
SAME_BYTES = ("loop/pairs.jsonl", "loop/own_captions.jsonl")
#: what a user's environment can change about a run, unset for a fresh-machine run
USER_STATE = ("MMHALLU_CACHE", "NLTK_DATA", "XDG_CACHE_HOME")


def run_demo(folder: Path, user_home: bool, quick: bool = False) -> dict:
    """One `mmhallu demo` in FOLDER (which must not exist): wall time, the process tree's peak RSS and CPU time
    (from wait4, which covers the children the command waited for), exit status."""
    folder.mkdir(parents=True)
    env = dict(os.environ)
    if not user_home:
        (folder / "home").mkdir()
        env["HOME"] = str(folder / "home")
        for name in USER_STATE:
            env.pop(name, None)
    log = folder / "demo.log"
    with log.open("w") as out:
        launched = datetime.now(timezone.utc)
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "mmhallu_eval.cli", "demo", "--out", "demo", "--no-progress", *(["--quick"] if quick else [])], cwd=folder, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: Popen must not wait for it again
    return {"folder": str(folder), "launched": launched.isoformat(timespec="seconds"), "exit": proc.returncode, "wall_s": round(wall, 1), "peak_rss_gb": round(usage.ru_maxrss / 1024 / 1024, 2),
            "user_s": round(usage.ru_utime, 1), "system_s": round(usage.ru_stime, 1), "log": str(log)}


def read_run(demo: Path, launched: str | None = None) -> dict:
    """Stage and task times, the scorecard, and every result's metrics of a finished demo folder; with the launch
    time, also the time before the loop's first stage (the world, the benchmarks, the model: to the second)."""
    loop = json.loads((demo / "loop" / "loop.json").read_text())
    timed = [(name, datetime.fromisoformat(s["started"]), datetime.fromisoformat(s["finished"])) for name, s in loop["stages"].items()
             if s.get("started") and s.get("finished")]
    stages = {name: round((end - begin).total_seconds(), 1) for name, begin, end in timed}
    if launched and timed:
        stages = {"before the loop": round((timed[0][1] - datetime.fromisoformat(launched)).total_seconds(), 1), **stages}
    tasks, metrics = {}, {}
    for side in ("base", "tuned"):
        manifest = json.loads((demo / "loop" / side / "manifest.json").read_text())
        tasks[side] = {name: round(t["stats"]["total_seconds"], 1) for name, t in manifest["tasks"].items()}
        for result in sorted((demo / "loop" / side).glob("*/result.json")):
            metrics[f"{side}/{result.parent.name}"] = json.loads(result.read_text())["metrics"]
    compare = json.loads((demo / "loop" / "compare" / "compare.json").read_text())
    return {"stages_s": stages, "tasks_s": tasks, "scorecard": compare["scorecard"], "metrics": metrics}


def differences(demo: Path, run: dict, reference_demo: Path, reference: dict) -> list[str]:
    """What differs from a reference run: the files that must be byte-identical, result metrics, the scorecard."""
    found = [name for name in SAME_BYTES if (demo / name).read_bytes() != (reference_demo / name).read_bytes()]
    found += [f"{key} metrics" for key in sorted(set(run["metrics"]) | set(reference["metrics"])) if run["metrics"].get(key) != reference["metrics"].get(key)]
    # a reference made before the scorecard gained a field (p_holm) is compared on the fields it has
    if [{k: row.get(k) for k in ref} for row, ref in zip(run["scorecard"], reference["scorecard"])] != reference["scorecard"] \
            or len(run["scorecard"]) != len(reference["scorecard"]):
        found.append("the compare report's scorecard")
    return found


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="a new folder (refused if it holds anything)")
    ap.add_argument("--repeats", type=int, default=1, help="demo runs, one after the other")
    ap.add_argument("--reference", type=Path, help="an earlier OUT of this script: its first run is what every run must match")
    ap.add_argument("--quick", action="store_true", help="`mmhallu demo --quick` (a small world and short training): checks this script, not the target")
    ap.add_argument("--user-home", action="store_true", help="keep HOME, MMHALLU_CACHE, NLTK_DATA and XDG_CACHE_HOME as they are")
    args = ap.parse_args()
    if args.repeats < 1:
        sys.exit("--repeats must be at least 1")
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"--out {args.out} is not empty: give a new folder (this script does not delete earlier runs)")
    reference_demo = reference = None
    if args.reference:
        reference_demo = args.reference / "run1" / "demo"
        if not (reference_demo / "loop" / "compare" / "compare.json").is_file():
            sys.exit(f"--reference {args.reference}: no finished demo at {reference_demo} (give an --out of this script)")
        reference = read_run(reference_demo)
    runs = []
    for i in range(1, args.repeats + 1):
        folder = args.out / f"run{i}"
        row = run_demo(folder, args.user_home, args.quick)
        print(f"run {i}: exit {row['exit']}, {_minutes(row['wall_s'])}, peak RSS {row['peak_rss_gb']} GB", file=sys.stderr, flush=True)
        if row["exit"] != 0:
            runs.append(row)
            break
        row |= read_run(folder / "demo", row["launched"])
        first = runs[0] if runs else None
        if first is not None:
            row["differs_from_run1"] = differences(folder / "demo", row, Path(first["folder"]) / "demo", first)
        if reference is not None:
            row["differs_from_reference"] = differences(folder / "demo", row, reference_demo, reference)
        runs.append(row)
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "python": platform.python_version(), "quick": args.quick, "fresh_home": not args.user_home, "reference": str(args.reference) if args.reference else None, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_demo.json").write_text(json.dumps(report, indent=1))
    for i, row in enumerate(runs, 1):
        if row["exit"] != 0:
            print(f"run {i}: `mmhallu demo` exited {row['exit']}; see {row['log']}")
            continue
        stages = ", ".join(f"{name} {secs:.0f}" for name, secs in row["stages_s"].items())
        tasks = "; ".join(f"{name} {row['tasks_s']['base'][name]:.1f} / {row['tasks_s']['tuned'].get(name, float('nan')):.1f}" for name in row["tasks_s"]["base"])
        print(f"run {i}: **{_minutes(row['wall_s'])}**, peak RSS {row['peak_rss_gb']:.2f} GB, user {row['user_s']:.0f} s, system {row['system_s']:.0f} s, exit 0")
        print(f"  stages (s): {stages}")
        print(f"  per task, base / tuned (s): {tasks}")
        for key in ("differs_from_run1", "differs_from_reference"):
            if key in row:
                print(f"  {key.replace('_', ' ')}: {', '.join(row[key]) or 'nothing (pairs, captions, every metric and the scorecard identical)'}")
        designed = [r for r in row["scorecard"] if (r["task"], r["group"]) in DESIGNED_SCOPES]
        print("  " + format_scorecard(designed).replace("\n", "\n  "))
    sys.exit(0 if all(r["exit"] == 0 and not r.get("differs_from_run1") and not r.get("differs_from_reference") for r in runs) else 1)


if __name__ == "__main__":
    main()
