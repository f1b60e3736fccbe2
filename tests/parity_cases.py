"""Deterministic model outputs for the parity cases: the same function writes the answers the official scripts
scored (their printed numbers are stored in tests/fixtures/parity/) and the answers the tests score."""
from __future__ import annotations

import json
import random
from pathlib import Path

#: POPE-style answers: plain, long, unreadable, and the substrings RePOPE's parser trips on ("snow", "know", "not")
YESNO_TEXTS = ("Yes", "No", "yes", "no", "Yes, there is a dog.", "No, there is not.", "There is a snowboard.",
               "I don't know.", "I cannot tell.", "Maybe.", "Not that I can see.", "YES", "Nope", "The image shows a cat.")


def repope_answers(pope_dir: Path, out: Path, seed: int = 0) -> Path:
    """One answer per question of the three original POPE files (RePOPE removed some), namespaced ids."""
    rng = random.Random(seed)
    lines = []
    for split in ("adversarial", "popular", "random"):
        for raw in (pope_dir / f"coco_pope_{split}.json").read_text().splitlines():
            row = json.loads(raw)
            lines.append({"question_id": f"{split}-{row['question_id']}", "text": rng.choice(YESNO_TEXTS)})
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return out
