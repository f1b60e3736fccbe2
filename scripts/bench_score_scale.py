"""Scoring at scale: `mmhallu score pope` on N generated answers (three POPE splits), as a separate process, reporting
wall time and peak RSS (the target: 1M answers in under 2 GB and about a minute on 2 cores).

    python scripts/bench_score_scale.py --n 1000000 --work /tmp/scale
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path


def write_data(work: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    rng = random.Random(seed)
    data = work / "pope"
    data.mkdir(parents=True, exist_ok=True)
    answers = work / "answers.jsonl"
    per_split = n // 3
    with answers.open("w") as out:
        for split in ("random", "popular", "adversarial"):
            with (data / f"coco_pope_{split}.json").open("w") as fh:
                for q in range(1, per_split + 1):
                    label = "yes" if q % 2 else "no"
                    fh.write(json.dumps({"question_id": q, "image": f"COCO_val2014_{q:012d}.jpg", "text": f"Is there a dog in the image? {q}", "label": label}) + "\n")
                    text = label.capitalize() if rng.random() < 0.85 else ("No" if label == "yes" else "Yes")
                    out.write(json.dumps({"question_id": f"{split}-{q}", "text": text}) + "\n")
    return data, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mmhallu-scale"))
    args = ap.parse_args()
    data, answers = write_data(args.work, args.n)
    out = args.work / "result.json"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mmhallu_eval.cli", "score", "pope", "--data", str(data), "--answers", str(answers), "--out", str(out)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(proc.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = json.loads(out.read_text())
    print(json.dumps({"answers": result["n"], "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_mb), "accuracy": result["metrics"]["accuracy"],
                      "ci_accuracy": result["ci"]["accuracy"]}, indent=1))


if __name__ == "__main__":
    main()
