#!/usr/bin/env python
"""Train the demo VLM that `mmhallu demo` otherwise trains on first use (and caches in OUT/assets).

    python scripts/train_demo_model.py --out demo-model --steps 2500      # seed 0, 400 train images

Builds the shapes world (seed, --train, --test) in a temporary folder, builds a small LLaVA-architecture model
(CLIP ViT 48 px / patch 16 — one patch per grid cell —, 3 layers × 128; Llama 4 layers × 160; byte-level BPE tokenizer trained on the world's
text) and trains it on the train split's captions and QA for --steps steps (batch 32, AdamW, fixed seed).
Same seed, same torch build → same weights. About 0.4 s per step on 2 CPU cores. See docs/demo.md for what
the model does and does not learn yet.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from mmhallu_eval.world.demo_model import build_demo_model
from mmhallu_eval.world.shapes import build_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp) / "world", seed=args.seed, n_train=args.train, n_test=args.test)
        build_demo_model(world, args.out, steps=args.steps, seed=args.seed)
    info = json.loads((args.out / "demo_model.json").read_text())
    info.update(n_train=args.train, n_test=args.test, world="built by scripts/train_demo_model.py")
    (args.out / "demo_model.json").write_text(json.dumps(info, indent=1))
    print(f"wrote {args.out}: {info}")


if __name__ == "__main__":
    main()
