#!/usr/bin/env python
"""CHAIR scorer throughput: mmhallu-eval's `chair-opera` against OPERA's chair.py on the same captions.

    NLTK_DATA=../shared/nltk_data python scripts/bench_chair.py \
        --captions ../shared/benchmarks/chair/opera_captions/*/*.jsonl \
        --gt ../shared/benchmarks/chair/opera_captions/gt_objects.json [--official PATH/TO/OPERA/chair.py]

The caption files are concatenated (and repeated if needed) to --n captions. Both scorers are timed after
their one-off set-up (NLTK import, WordNet and tagger loading), so the figures are steady-state captions/s;
the end-to-end `mmhallu score chair` wall time is printed too. With --official the metrics must agree exactly.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def load_rows(paths: list[Path], n: int) -> list[dict]:
    rows = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]
    if not rows:
        sys.exit("no captions")
    while len(rows) < n:
        rows += rows[: n - len(rows)]
    return rows[:n]


def bench_ours(captions_file: Path, gt: Path) -> tuple[dict, float]:
    from mmhallu_eval import get_task
    from mmhallu_eval.scoring import build_result, score_texts

    spec = get_task("chair")
    samples, match = spec.answers(captions_file, {"gt": str(gt)})  # loads NLTK, WordNet, tagger
    texts = match.texts
    t0 = time.perf_counter()
    records = score_texts(spec, spec.parser(None), samples, texts)
    result = build_result(spec, spec.parser(None), records)
    return result["metrics"], time.perf_counter() - t0


def bench_official(path: Path, captions_file: Path, gt: Path) -> tuple[dict, float]:
    spec = importlib.util.spec_from_file_location("official_chair", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.CHAIR.get_annotations = lambda self: None  # ground truth comes from --gt instead of COCO files
    evaluator = module.CHAIR("unused")
    evaluator.imid_to_objects = {int(k): set(v) for k, v in json.loads(gt.read_text()).items()}
    evaluator.caption_to_words("warm up wordnet and the tagger")
    t0 = time.perf_counter()
    out = evaluator.compute_chair(str(captions_file), "image_id", "caption")["overall_metrics"]
    return {"chair_s": out["CHAIRs"], "chair_i": out["CHAIRi"], "recall": out["Recall"], "avg_len": 100 * out["Len"]}, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captions", type=Path, nargs="+", required=True)
    ap.add_argument("--gt", type=Path, required=True)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--official", type=Path, help="OPERA's chair.py, to time it on the same captions")
    args = ap.parse_args()
    rows = load_rows(args.captions, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        captions_file = Path(tmp) / "captions.jsonl"
        captions_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
        ours, t_ours = bench_ours(captions_file, args.gt)
        print(f"mmhallu chair-opera : {len(rows)} captions in {t_ours:.2f}s = {len(rows) / t_ours:.0f} captions/s")
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mmhallu_eval.cli", "score", "chair", "--answers", str(captions_file), "--gt", str(args.gt),
             "--out", str(Path(tmp) / "r.json")], check=True, capture_output=True,
        )
        print(f"mmhallu score chair (end to end, incl. NLTK start-up and writing files): {time.perf_counter() - t0:.2f}s")
        if args.official:
            official, t_off = bench_official(args.official, captions_file, args.gt)
            print(f"OPERA chair.py      : {len(rows)} captions in {t_off:.2f}s = {len(rows) / t_off:.0f} captions/s")
            print(f"speed-up            : {t_off / t_ours:.1f}x")
            same = all(abs(official[k] - ours[k]) < 1e-12 for k in official)
            print(f"identical metrics   : {same} {ours if not same else ''}")
            if not same:
                sys.exit(1)


if __name__ == "__main__":
    main()
