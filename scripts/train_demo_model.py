#!/usr/bin/env python
"""Train the demo VLM that `mmhallu demo` uses, the way the shipped one (mmhallu_eval/world/demo_weights) was made.

    python scripts/train_demo_model.py                       # rebuilds the shipped model in place (seed 0, 400/200 images)
    python scripts/train_demo_model.py --out /tmp/my-demo    # elsewhere

Builds the shapes world (--seed, --train, --test) in a temporary folder, builds a small LLaVA-architecture model
(CLIP ViT 48 px / patch 16 — one patch per grid cell —, 3 layers × 128; Llama 4 layers × 160; byte-level BPE tokenizer
trained on the world's text) and trains it in stages (mmhallu_eval/world/demo_training.py): the language model on
questions about generated scenes with ideal image tokens (then existence questions alone), the vision tower towards
those tokens, the whole model on the train split's images, then the caption stages (captions in reading order:
language model on generated scenes, then the whole model on the train images). Same seed, same torch build and
thread count → the same weights (the SHA-256 of model.safetensors is written to demo_model.json). About 30 minutes
on 2 CPU cores; see docs/demo.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from dataclasses import fields
from pathlib import Path

from mmhallu_eval.world.demo_model import SHIPPED_MODEL, DemoTraining, build_demo_model
from mmhallu_eval.world.shapes import build_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=SHIPPED_MODEL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--test", type=int, default=200)
    for f in fields(DemoTraining):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = ap.parse_args()
    training = DemoTraining(**{f.name: getattr(args, f.name) for f in fields(DemoTraining)})
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp) / "world", seed=args.seed, n_train=args.train, n_test=args.test)
        build_demo_model(world, args.out, seed=args.seed, training=training)
    info = json.loads((args.out / "demo_model.json").read_text())
    info.update(n_train=args.train, n_test=args.test, world="built by scripts/train_demo_model.py",
                sha256=hashlib.sha256((args.out / "model.safetensors").read_bytes()).hexdigest())
    (args.out / "demo_model.json").write_text(json.dumps(info, indent=1))
    print(f"wrote {args.out}: {info}")


if __name__ == "__main__":
    main()
