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


def amber_vectors(amber_dir: Path, out: Path, seed: int = 0) -> Path:
    """A spaCy pipeline (tokenizer + word vectors) standing in for en_core_web_lg: random vectors for AMBER's object
    words, a few pairs of them near-identical (similarity > 0.8: the rescue and the second Cog hit), some words
    without a vector (similarity 0)."""
    import numpy as np
    import spacy

    relation = json.loads((amber_dir / "relation.json").read_text())
    words = sorted(set(relation) | {w for ws in relation.values() for w in ws})
    rng = np.random.default_rng(seed)
    vectors = {w: rng.normal(size=32).astype("float32") for w in words if w not in words[3::11]}
    pick = random.Random(seed)
    for a, b in zip(pick.sample(words, 40), pick.sample(words, 40)):
        if a in vectors and b in vectors and a != b:
            vectors[b] = vectors[a] + rng.normal(scale=0.2, size=32).astype("float32")
    nlp = spacy.blank("en")
    for word, vector in vectors.items():
        nlp.vocab.set_vector(word, vector)
    nlp.to_disk(out)
    return out


def amber_answers(amber_dir: Path, out: Path, seed: int = 0) -> Path:
    """AMBER answers in the official inference format for every query: descriptions mixing the image's objects, its
    hallucination objects, their associated words, other object words, safe words, capitalised words and plurals;
    yes/no answers exact and not ("Yes", "No.", "yes")."""
    rng = random.Random(seed)
    annotations = json.loads((amber_dir / "annotations.json").read_text())
    relation = json.loads((amber_dir / "relation.json").read_text())
    vocabulary = sorted(set(relation) | {w for ws in relation.values() for w in ws})
    safe = (amber_dir / "safe_words.txt").read_text().split("\n")
    rows = []
    for item in annotations:
        if item["type"] == "generative":
            pool = (item["truth"] + item["hallu"] + [w for o in item["truth"] + item["hallu"] for w in relation[o]]
                    + rng.sample(vocabulary, 3) + safe[:3] + ["dogs", "Car", "people", "table"])
            picked = rng.sample(pool, min(len(pool), rng.randint(0, 7)))
            sentences = [rng.choice(("There is a {} here.", "I can see {}s near the {}.", "A {} stands by the {}."))
                         .format(*(w for w in (picked[i], picked[(i + 1) % len(picked)]))) for i in range(len(picked))]
            rows.append({"id": item["id"], "response": " ".join(sentences) or "An empty scene."})
        else:
            rows.append({"id": item["id"], "response": rng.choice(("Yes", "No", "Yes", "No", "No.", "yes", "Yes, it is."))})
    out.write_text(json.dumps(rows))
    return out


HB_ANSWERS = ("Yes.", "No.", "Yes, it is.", "No, it is not.", "I am not sure.", "It cannot be determined from the figure.")
HB_CORRECTNESS = ("correct", "Incorrect.", "The prediction is correct.", "unclear", "I cannot tell.", "CORRECT", "incorrect")
HB_SAME = ("same", "different", "They are not the same.", "Different.", "unknown")


def hallusion_case(data: Path, result: Path, replies: Path, seed: int = 0) -> tuple[Path, Path]:
    """A result file in the official format (HallusionBench.json rows + model_prediction; each prediction ends with
    its question's key, so a stand-in judge can find its reply) and raw judge replies for both official prompts."""
    rng = random.Random(seed)
    rows = json.loads(data.read_text())
    saved = {}
    for row in rows:
        key = "_".join(str(row[f]) for f in ("category", "subcategory", "set_id", "figure_id", "question_id"))
        row["model_prediction"] = f"{rng.choice(HB_ANSWERS)} (#{key})"
        saved[key] = {"correctness_reply": rng.choice(HB_CORRECTNESS), "same_reply": rng.choice(HB_SAME)}
    result.write_text(json.dumps(rows))
    replies.write_text(json.dumps(saved))
    return result, replies
