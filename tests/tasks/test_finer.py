"""FINER: official prompt and first-letter parser, pair validation, paired accuracy, score and run."""
import json
import subprocess
import sys

import pytest

from mmhallu_eval import TaskError, get_task
from mmhallu_tasks.finer.loaders import build_prompt
from mmhallu_tasks.finer.parsers import finer_official, letter_strict
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]


@pytest.mark.parametrize(
    "text,official,strict",
    [
        ("B", 1, 1), ("(C)", 2, 2), ("e", 4, None), ("The answer is B", 4, None),  # 'e' of "The" → E: the quirk
        ("A.", 0, None), ("  D ", 3, 3), ("", None, None), ("xyz", None, None), ("(B) because", 1, None),
        ("Option 2", None, None), ("I think", None, None), ("Fish", None, None), ("dog", 3, None),
    ],
)
def test_parsers(text, official, strict):
    assert finer_official(text) == official
    assert letter_strict(text) == strict


def test_official_prompt_verbatim():
    assert build_prompt("What color is the car?", ["red", "blue", "green", "black", "white"]) == (
        "Select the best answer for the multiple-choice question.\n\nWhat color is the car?\n\n"
        "(A) red\n(B) blue\n(C) green\n(D) black\n(E) white\n\n"
        "Please answer with a single capital letter (A, B, C, D, or E):"
    )


def _row(image, qtype, gt, text, setting="multi_attr", **extra):
    row = {"image_filename": image, "qtype": qtype, "question": f"q {qtype}", "gt_index": gt, "text": text, "setting": setting}
    row.update({f"choice{i}": f"c{i}" for i in range(1, 6)})
    row.update(extra)
    return row


def _score(tmp_path, rows, *extra):
    answers = tmp_path / "rows.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.json"
    proc = mmhallu("score", "finer", "--answers", str(answers), "--out", str(out), *extra)
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def test_paired_accuracy_hand_worked(tmp_path):
    rows = [
        _row("a.jpg", "attr1_pos", 1, "B"), _row("a.jpg", "attr1_neg", 3, "D"),   # pair right
        _row("a.jpg", "attr2_neg", 0, "B"), _row("a.jpg", "attr2_pos", 2, "C"),   # neg wrong (order swapped)
        _row("b.jpg", "attr1_pos", 4, "The answer is B"), _row("b.jpg", "attr1_neg", 0, "A"),  # quirk → E: right
        _row("b.jpg", "obj1_pos", 0, "A", setting="multi_obj"), _row("b.jpg", "obj1_neg", 1, "", setting="multi_obj"),
    ]
    proc, r = _score(tmp_path, rows)
    assert proc.returncode == 0, proc.stderr
    attr = r["groups"]["multi_attr"]
    assert (attr["paired_accuracy"], attr["question_accuracy"], attr["pos_accuracy"], attr["neg_accuracy"]) == (2 / 3, 5 / 6, 1.0, 2 / 3)
    obj = r["groups"]["multi_obj"]
    assert (obj["paired_accuracy"], obj["unanswered"], obj["n_pairs"]) == (0.0, 1, 1)
    assert r["metrics"]["paired_accuracy"] == pytest.approx(0.5) and r["metrics"]["question_accuracy"] == pytest.approx(6 / 8)
    assert r["task"] == "finer_comprecap" and r["parser"] == "finer-official"
    proc, strict = _score(tmp_path, rows, "--parser", "letter-strict", "--dataset", "docci")
    assert strict["task"] == "finer_docci" and strict["metrics"]["unanswered"] == 2


@pytest.mark.parametrize(
    "rows,message",
    [
        ([_row("a.jpg", "attr1_pos", 1, "B"), _row("a.jpg", "attr1_pos", 1, "B")], "one _pos and one _neg"),
        ([_row("a.jpg", "attr1_pos", 1, "B")], "expected 2 questions, found 1"),
        ([_row("a.jpg", "attr1", 1, "B")], "must end with _pos or _neg"),
        ([_row("a.jpg", "attr1_pos", 7, "B")], "gt_index must be 0–4"),
        ([_row("a.jpg", "attr1_pos", 1, "B", setting="colour")], "setting 'colour' is not one of"),
    ],
)
def test_bad_rows_fail_clearly(tmp_path, rows, message):
    proc, _ = _score(tmp_path, rows)
    assert proc.returncode == 2 and message in proc.stderr
    assert "rows.jsonl:1" in proc.stderr or "FINER multi_attr image a.jpg" in proc.stderr


def test_a_broken_pair_in_the_data_is_refused_before_the_model_loads(tmp_path, finer_fixture):
    """A FINER file with a pair's row doubled was found only when result.json was built, after every question had
    been generated; `run` now names it while reading the data (the model path here does not exist, so reaching the
    model would be another error)."""
    rows = [json.loads(l) for l in (finer_fixture / "multi_obj.jsonl").read_text().splitlines()]
    folder = tmp_path / "finer"
    folder.mkdir()
    (folder / "multi_obj.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [rows[0], rows[0], *rows[2:]]))
    proc = mmhallu("run", "--model", str(tmp_path / "no-model"), "--tasks", "finer_comprecap", "--out", str(tmp_path / "run"),
                           "--task-arg", f"finer_comprecap.data={folder}", "--task-arg", f"finer_comprecap.images={finer_fixture / 'images'}")
    assert proc.returncode == 2 and not (tmp_path / "run").exists()
    assert proc.stderr.startswith(f"error: FINER multi_obj image {rows[0]['image_filename']} qtype ") and "a pair needs one _pos and one _neg row" in proc.stderr


def test_csv_folder_per_setting(tmp_path, finer_fixture):
    import pandas as pd

    folder = tmp_path / "csv"
    folder.mkdir()
    rows = [json.loads(l) for l in (finer_fixture / "multi_obj.jsonl").read_text().splitlines()]
    pd.DataFrame(rows).to_csv(folder / "multi_obj.csv", index=False)
    samples = get_task("finer_docci").load({"data": str(folder), "images": str(finer_fixture / "images")})
    assert len(samples) == len(rows) and samples[0].group == "multi_obj" and samples[0].target == rows[0]["gt_index"]
    assert samples[0].images[0].endswith(rows[0]["image_filename"])
    with pytest.raises(TaskError, match="unknown FINER setting"):
        get_task("finer_docci").load({"data": str(folder), "settings": "multi_color"})


def test_run_finer_end_to_end(tiny_llava, finer_fixture, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [*CLI, "run", "--model", str(tiny_llava), "--tasks", "finer_comprecap", "--out", str(out), "--no-progress",
         "--task-arg", f"finer_comprecap.data={finer_fixture}", "--task-arg", f"finer_comprecap.images={finer_fixture / 'images'}",
         "--limit", "5"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "finer_comprecap/result.json").read_text())
    assert result["n"] == 6 and result["metrics"]["n_pairs"] == 3  # --limit keeps whole pairs
    assert result["generation"]["max_new_tokens"] == 2
    sample = json.loads((out / "finer_comprecap/samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].startswith("Select the best answer") and sample["prompt"].endswith("(A, B, C, D, or E):")
