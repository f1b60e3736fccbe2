"""`mmhallu score pope` against the official evaluation on real LLaVA-1.5-13B answers."""
import json
from pathlib import Path

import pytest
from cli_in_process import mmhallu


def official_eval_pope(answers: list[dict], label_file: Path) -> dict:
    """The LLaVA eval_pope.py procedure, restated: pair answers with the label file's lines in order."""
    labels = [json.loads(line)["label"] for line in label_file.read_text().splitlines() if line.strip()]
    preds = []
    for a in answers:
        text = a["text"]
        if text.find(".") != -1:
            text = text.split(".")[0]
        words = text.replace(",", "").split(" ")
        preds.append("no" if ("No" in words or "not" in words or "no" in words) else "yes")
    tp = sum(p == "yes" and l == "yes" for p, l in zip(preds, labels))
    fp = sum(p == "yes" and l == "no" for p, l in zip(preds, labels))
    tn = sum(p == "no" and l == "no" for p, l in zip(preds, labels))
    fn = sum(p == "no" and l == "yes" for p, l in zip(preds, labels))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {
        "accuracy": (tp + tn) / (tp + tn + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "yes_ratio": preds.count("yes") / len(preds),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }


run_cli = mmhallu


def test_score_matches_official_on_llava_answers(shared_benchmarks, tmp_path):
    llava = shared_benchmarks / "pope" / "llava-1.5-13b"
    out = tmp_path / "result.json"
    proc = run_cli(
        "score", "pope", "--data", str(llava / "llava_pope_test.jsonl"), "--labels", str(llava / "coco_e3e3926"),
        "--answers", str(llava / "answers_llava-v1.5-13b.jsonl"), "--out", str(out),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["parser"] == "pope-official" and result["schema_version"] == 1 and result["n"] == 8910
    questions = {json.loads(l)["question_id"]: json.loads(l) for l in (llava / "llava_pope_test.jsonl").read_text().splitlines()}
    answers = [json.loads(l) for l in (llava / "answers_llava-v1.5-13b.jsonl").read_text().splitlines()]
    for category in ("adversarial", "popular", "random"):
        cur = [a for a in answers if questions[a["question_id"]]["category"] == category]
        expected = official_eval_pope(cur, llava / "coco_e3e3926" / f"coco_pope_{category}.json")
        got = result["groups"][category]
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-12), (category, key)
    # Figures printed by the official script for this file (F1, accuracy per category).
    assert round(result["groups"]["random"]["f1"], 4) == 0.8714
    assert round(result["groups"]["popular"]["accuracy"], 4) == 0.8743
    assert round(result["groups"]["adversarial"]["f1"], 4) == 0.8446
    assert result["metrics"]["n"] == 8910 and result["metrics"]["unparseable_strict"] == 0


def test_score_official_question_file_and_other_parsers(shared_benchmarks, tmp_path):
    qfile = shared_benchmarks / "pope" / "coco_pope_random.json"
    answers = tmp_path / "answers.jsonl"
    rows = [json.loads(l) for l in qfile.read_text().splitlines()]
    texts = ["NO", "Yes.", "There isn't one", "no"]
    answers.write_text("".join(json.dumps({"question_id": r["question_id"], "text": texts[i % 4]}) + "\n" for i, r in enumerate(rows)))
    results = {}
    for parser in ("pope-official", "pope-opera", "strict"):
        out = tmp_path / f"{parser}.json"
        proc = run_cli("score", "pope", "--data", str(qfile), "--answers", str(answers), "--out", str(out), "--parser", parser)
        assert proc.returncode == 0, proc.stderr
        results[parser] = json.loads(out.read_text())
    assert set(results["strict"]["groups"]) == {"random"}
    # official: "NO" and "There isn't one" read as yes → yes_ratio 3/4; OPERA reads both as no → 1/4.
    assert results["pope-official"]["metrics"]["yes_ratio"] == pytest.approx(0.75)
    assert results["pope-opera"]["metrics"]["yes_ratio"] == pytest.approx(0.25)
    # strict cannot read "There isn't one": a quarter unparsed, counted wrong, not a prediction.
    assert results["strict"]["metrics"]["unparsed"] == 750
    assert results["pope-official"]["metrics"]["unparseable_strict"] == 750
    assert results["strict"]["parser"] == "strict"


def test_score_reports_missing_duplicate_unknown(shared_benchmarks, tmp_path):
    qfile = shared_benchmarks / "pope" / "coco_pope_popular.json"
    answers = tmp_path / "answers.jsonl"
    lines = [json.dumps({"question_id": i, "text": "Yes"}) for i in range(1, 2998)]  # 2998..3000 missing
    lines += [json.dumps({"question_id": 5, "text": "No"}), json.dumps({"question_id": 99999, "text": "No"})]
    answers.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.json"
    proc = run_cli("score", "pope", "--data", str(qfile), "--answers", str(answers), "--out", str(out))
    assert proc.returncode != 0
    assert "3 missing answers (first: popular-2998" in proc.stderr
    assert "1 duplicate answer ids (first: 5)" in proc.stderr
    assert "1 answer ids not in the data (first: 99999)" in proc.stderr
    assert not out.exists()
    proc = run_cli("score", "pope", "--data", str(qfile), "--answers", str(answers), "--out", str(out), "--allow-missing")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["n"] == 2997 and result["missing_answers"] == 3 and result["duplicate_answers"] == 1


def test_malformed_question_line_names_file_and_line(tmp_path):
    qfile = tmp_path / "coco_pope_random.json"
    qfile.write_text('{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "label": "yes"}\n{"question_id": 2,\n')
    answers = tmp_path / "a.jsonl"
    answers.write_text('{"question_id": 1, "text": "Yes"}\n')
    proc = run_cli("score", "pope", "--data", str(qfile), "--answers", str(answers), "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 2
    assert f"{qfile}:2: not valid JSON" in proc.stderr


def test_bad_label_and_missing_field(tmp_path):
    qfile = tmp_path / "coco_pope_random.json"
    qfile.write_text('{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "label": "maybe"}\n')
    proc = run_cli("score", "pope", "--data", str(qfile), "--answers", str(qfile), "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 2 and "label must be 'yes' or 'no'" in proc.stderr and ":1" in proc.stderr
    qfile.write_text('{"question_id": 1, "text": "Is there a cat?", "label": "yes"}\n')
    proc = run_cli("score", "pope", "--data", str(qfile), "--answers", str(qfile), "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 2 and "missing field(s) image" in proc.stderr
    # an option given as its flag and as --task-arg: refused, not the flag taken silently
    proc = run_cli("score", "pope", "--data", str(qfile), "--task-arg", "pope.data=other.json", "--answers", str(qfile), "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 2 and "pope.data is given both as --data and as --task-arg pope.data; give it once" in proc.stderr


def test_hf_layout_loader_with_embedded_images(tmp_path):
    """The lmms-lab/POPE column layout, from a dataset folder written with save_to_disk."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    from mmhallu_eval import get_task

    rows = {
        "id": ["0", "1", "2"],
        "question_id": ["1", "2", "1"],
        "question": ["Is there a cat in the image?", "Is there a dog in the image?", "Is there a cat in the image?"],
        "answer": ["yes", "no", "yes"],
        "image_source": ["COCO_val2014_000000000001", "COCO_val2014_000000000001", "COCO_val2014_000000000001"],
        "image": [Image.new("RGB", (16, 16), (i * 60, 0, 0)) for i in range(3)],
        "category": ["adversarial", "adversarial", "random"],
    }
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features({
        **{k: datasets.Value("string") for k in rows if k != "image"}, "image": datasets.Image(),
    }))
    ds.save_to_disk(str(tmp_path / "pope_hf"))
    samples = get_task("pope").load({"data": f"hf:{tmp_path / 'pope_hf'}"})
    assert [s.id for s in samples] == ["adversarial-1", "adversarial-2", "random-1"]
    assert samples[0].target == "yes" and samples[1].group == "adversarial"
    assert samples[0].prompt.endswith("\nAnswer the question using a single word or phrase.")
    assert samples[2].images[0].size == (16, 16)
