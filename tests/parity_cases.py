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


#: yes/no answers for VLMEvalKit's exact matching: punctuation touching spaces or not, a thousands comma (every mark is
#: then deleted), more than 32 periods (only 32 are), both words, neither, and cells pandas would read as missing
VLMEVALKIT_TEXTS = (*YESNO_TEXTS, "Yes.", "No.", "yes/no", "Yes,it is.", "No (not visible).", "I see 1,000 dogs, yes.",
                    "(yes)", "no-one", "Yes! No!", "... " * 20 + "no", "yes" + "." * 40 + "no", "None", "N/A", "", "Yes\nNo",
                    "There is no dog; yes, a cat.", "[No]", "Yes_")


def _vlmevalkit_rows(task: str, samples: list, rng: random.Random) -> list[dict]:
    """The rows of VLMEvalKit's dataset file (image column dropped, as its predictions are written) for `samples`."""
    if task == "pope":
        rows: dict[tuple, dict] = {}
        for s in samples:  # one row per distinct question; category lists the splits that ask it
            row = rows.setdefault((s.metadata["image"], s.metadata["question"]), {
                "question": s.metadata["question"], "answer": s.target.capitalize(), "category": [], "image_path": s.metadata["image"]})
            row["category"].append(s.group)
        return [{"index": i, **r, "category": ",".join(r["category"])} for i, r in enumerate(rows.values())]
    if task == "mme":
        return [{"index": i, "question": s.metadata["question"], "answer": s.metadata["gt"], "category": s.group,
                 "image_path": f"{s.group}/{s.metadata['image']}"} for i, s in enumerate(samples)]
    if task == "hallusionbench":
        return [{"index": "_".join((m["category"], m["subcategory"], m["visual_input"], m["set_id"], m["figure_id"], m["question_id"])),
                 "question": m["question"], "answer": "Yes" if m["gt_answer"] == "1" else "No", "category": m["category"],
                 "l2-category": f"{m['category']}_{m['subcategory']}", "image_path": m["filename"]}
                for s in samples if (m := s.metadata)["visual_input"] != "0"]
    if task == "amber":
        return [{"index": s.metadata["amber_id"], "question": s.metadata["question"], "answer": s.target, "category": s.metadata["type"],
                 "image_path": s.metadata["image"]} for s in samples if s.target is not None]
    raise ValueError(task)


def vlmevalkit_predictions(task: str, samples: list, out: Path, seed: int = 0) -> dict[str, Path]:
    """VLMEvalKit's prediction file of a run on `samples`, written as its `dump` writes each PRED_FORMAT (xlsx through
    xlsxwriter with strings never formulas, tsv and csv fully quoted, json records indented by 4): {suffix: path}.
    `out` is the path without suffix, named like VLMEvalKit's: {model}_{dataset}."""
    import csv

    import pandas as pd

    rng = random.Random(seed)
    frame = pd.DataFrame(_vlmevalkit_rows(task, samples, rng))
    frame["prediction"] = [rng.choice(VLMEVALKIT_TEXTS) for _ in range(len(frame))]
    paths = {suffix: out.with_name(out.name + suffix) for suffix in (".xlsx", ".tsv", ".json")}
    with pd.ExcelWriter(paths[".xlsx"], engine="xlsxwriter", engine_kwargs={"options": {"strings_to_formulas": False}}) as writer:
        frame.to_excel(writer, index=False)
    frame.to_csv(paths[".tsv"], sep="\t", index=False, encoding="utf-8", quoting=csv.QUOTE_ALL)
    paths[".json"].write_text(json.dumps(frame.to_dict("records"), indent=4, ensure_ascii=False))
    return paths


def lmms_eval_docs(task: str, samples: list, seed: int = 0) -> list[tuple[dict, str]]:
    """(document, answer) pairs of an lmms-eval run on `samples`: the documents in the schema of the dataset lmms-eval's
    task loads (without the image), in the order written to the log. MME: lmms-lab MME (question_id
    "subtask/image"); hallusion_bench_image: lmms-lab HallusionBench's image split (the questions with a figure);
    amber_g: the AMBER generative queries with their annotation (question_id, task_type, truth, hallu)."""
    rng = random.Random(seed)
    if task == "mme":
        return [({"question_id": f"{s.group}/{s.metadata['image']}", "question": s.metadata["question"], "answer": s.metadata["gt"],
                  "category": s.group}, rng.choice(YESNO_TEXTS)) for s in samples]
    if task == "hallusionbench":
        return [({k: m[k] for k in ("category", "subcategory", "visual_input", "set_id", "figure_id", "question_id",
                                    "question", "gt_answer_details", "gt_answer", "filename")}, rng.choice(HB_ANSWERS))
                for s in samples if (m := s.metadata)["visual_input"] != "0"]
    if task == "amber":
        out = []
        for s in samples:
            m = s.metadata
            pool = m["truth"] + m["hallu"] + ["dogs", "Car", "people", "table", "sky"]
            words = rng.sample(pool, min(len(pool), rng.randint(0, 6)))
            text = " ".join(f"There is a {w} here." for w in words) or "An empty scene."
            out.append(({"question_id": m["amber_id"], "task_type": "generative", "truth": m["truth"], "hallu": m["hallu"]}, text))
        return out
    raise ValueError(task)
