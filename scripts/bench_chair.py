#!/usr/bin/env python
"""CHAIR, whole command against whole command: `mmhallu score chair` against OPERA's `chair.py` on the same captions,
Python start-up, NLTK loading, scoring and writing included, and the steady state of both scorers.

    NLTK_DATA=../shared/nltk_data python scripts/bench_chair.py \\
        --captions ../shared/benchmarks/chair/opera_captions/*/*.jsonl \\
        --gt ../shared/benchmarks/chair/opera_captions/gt_objects.json --official PATH/TO/OPERA/chair.py

The caption files are concatenated to --n captions; each caption gets its own image id (a copy of its image's
ground truth), since a file may answer an image once. OPERA's chair.py runs in a fresh Python with that ground truth
given to it (its COCO loading skipped, as `mmhallu score chair --gt` skips it). mmhallu runs cold (an empty cache
folder: WordNet loads) and warm (the lemma table of the cold run; the median of --repeat runs, alternating with
OPERA's). The metrics must agree.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OFFICIAL_RUN = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("official_chair", sys.argv[1])
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
module.CHAIR.get_annotations = lambda self: None
evaluator = module.CHAIR("unused")
evaluator.imid_to_objects = {int(k): set(v) for k, v in json.load(open(sys.argv[3])).items()}
out = evaluator.compute_chair(sys.argv[2], "image_id", "caption")["overall_metrics"]
json.dump({"chair_s": out["CHAIRs"], "chair_i": out["CHAIRi"], "recall": out["Recall"], "avg_len": 100 * out["Len"]}, open(sys.argv[4], "w"))
"""


def build_inputs(paths: list[Path], gt_path: Path, n: int, tmp: Path) -> tuple[Path, Path]:
    gt = json.loads(gt_path.read_text())
    rows = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]
    if not rows:
        sys.exit("no captions")
    captions, truth = [], {}
    for i in range(n):
        row = rows[i % len(rows)]
        image_id = (i + 1) * 1_000_000 + int(row["image_id"])
        captions.append({"image_id": image_id, "caption": row["caption"]})
        truth[str(image_id)] = gt[str(row["image_id"])]
    (tmp / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in captions))
    (tmp / "gt.json").write_text(json.dumps(truth))
    return tmp / "captions.jsonl", tmp / "gt.json"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captions", type=Path, nargs="+", required=True)
    ap.add_argument("--gt", type=Path, required=True)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--official", type=Path, help="OPERA's chair.py, to time it on the same captions")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        captions, gt = build_inputs(args.captions, args.gt, args.n, tmp)
        env = {**os.environ, "MMHALLU_CACHE": str(tmp / "cache")}
        ours = [sys.executable, "-m", "mmhallu_eval.cli", "score", "chair", "--answers", str(captions), "--gt", str(gt)]
        cold = timed([*ours, "--out", str(tmp / "cold" / "r.json")], env)
        off = [sys.executable, "-c", OFFICIAL_RUN, str(args.official), str(captions), str(gt)] if args.official else None
        warm_runs, official_runs = [], []
        for i in range(args.repeat):  # the two commands alternate, so a change in the machine's pace hits both
            warm_runs.append(timed([*ours, "--out", str(tmp / f"warm{i}" / "r.json")], env))
            if off:
                official_runs.append(timed([*off, str(tmp / f"official{i}.json")], env))
        warm = statistics.median(warm_runs)
        metrics = json.loads((tmp / "cold" / "r.json").read_text())["metrics"]
        print(f"mmhallu score chair, {args.n} captions: cold {cold:.2f}s ({args.n / cold:.0f}/s), warm {warm:.2f}s ({args.n / warm:.0f}/s) "
              f"(runs: {', '.join(f'{t:.2f}' for t in warm_runs)})")
        if off:
            t_off = statistics.median(official_runs)
            print(f"OPERA runs: {', '.join(f'{t:.2f}' for t in official_runs)}")
            official = json.loads((tmp / "official0.json").read_text())
            print(f"OPERA chair.py, same captions: {t_off:.2f}s ({args.n / t_off:.0f}/s)")
            print(f"speed-up, whole command: {t_off / warm:.1f}x warm, {t_off / cold:.1f}x cold")
            same = all(abs(official[k] - metrics[k]) < 1e-12 for k in official)
            print(f"identical metrics: {same}")
            if not same:
                print(official, metrics)
                sys.exit(1)


if __name__ == "__main__":
    main()
