"""`mmhallu score TASK --format vlmevalkit`: VLMEvalKit's prediction files (xlsx, tsv, json) for POPE, MME,
HallusionBench and AMBER, joined to --data by what each row says about its question; VLMEvalKit's per-item reading
equals its own `YOrN_Extraction` (tests/fixtures/parity/vlmevalkit), its score file is set beside the official numbers,
and files that do not fit get one clear error."""
from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmhallu_eval.interop.vlmevalkit import read_table, yorn_extraction
from mmhallu_eval.registry import get_task
from parity_cases import vlmevalkit_predictions
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "vlmevalkit"
NAMES = {"pope": "POPE", "mme": "MME", "hallusionbench": "HallusionBench", "amber": "AMBER"}
DATA = {"pope": ("pope",), "mme": ("mme", "questions"), "hallusionbench": ("hallusionbench", "HallusionBench.json"), "amber": ("amber",)}
EXTRA = {"hallusionbench": ["--parser", "yesno"], "amber": ["--evaluation-type", "d"]}


@pytest.fixture(scope="module")
def extracted() -> dict:
    return json.loads(gzip.decompress((FIXTURES / "extracted.json.gz").read_bytes()))["extracted"]


def data_path(shared: Path, task: str) -> Path:
    return shared.joinpath(*DATA[task])


@pytest.fixture(scope="module")
def cases(shared_benchmarks, tmp_path_factory) -> dict[str, dict[str, Path]]:
    out = tmp_path_factory.mktemp("vlmevalkit")
    found = {}
    for task, name in NAMES.items():
        spec = get_task(task)
        options = {"data": str(data_path(shared_benchmarks, task)), **({"evaluation_type": "d"} if task == "amber" else {})}
        found[task] = vlmevalkit_predictions(task, spec.load(spec.parse_options(options)), out / f"TinyModel_{name}")
    return found


def score(task: str, *args: str) -> subprocess.CompletedProcess:
    return mmhallu("score", task, *args)


def rows_of(path: Path) -> list[dict[str, str]]:
    return [r for _, r in read_table(path)[1]]


@pytest.mark.parametrize("suffix", [".xlsx", ".tsv", ".json"])
@pytest.mark.parametrize("task", sorted(NAMES))
def test_per_item_reading_equals_vlmevalkits_own(cases, extracted, task, suffix):
    rows = rows_of(cases[task][suffix])
    theirs = extracted[NAMES[task]]
    assert len(rows) == len(theirs) == {"pope": 5127, "mme": 2374, "hallusionbench": 951, "amber": 14216}[task]
    assert {r["index"]: yorn_extraction(r["prediction"]) for r in rows} == theirs
    assert {"None", "N/A", ""} <= {r["prediction"] for r in rows}  # cells pandas would read as missing stay text




@pytest.mark.parametrize("task,suffix", [("pope", ".xlsx"), ("mme", ".tsv"), ("hallusionbench", ".json"), ("amber", ".xlsx")])
def test_predictions_score_with_the_peers_numbers_beside(shared_benchmarks, cases, extracted, tmp_path, task, suffix):
    answers = cases[task][suffix]
    peer = FIXTURES / f"TinyModel_{NAMES[task]}_score.csv"
    done = score(task, "--data", str(data_path(shared_benchmarks, task)), *EXTRA.get(task, []), "--format", "auto", "--answers", str(answers),
                 "--peer-results", str(peer), "--out", str(tmp_path / "result.json"))
    assert done.returncode == 0, done.stderr
    assert "read as vlmevalkit" in done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["answers_format"] == f"vlmevalkit:{NAMES[task]}"
    assert result["n"] == {"pope": 9000, "mme": 2374, "hallusionbench": 951, "amber": 14216}[task]
    assert result["missing_answers"] == result["unknown_answers"] == result["duplicate_answers"] == 0
    reported = result["peer_reported"]
    assert reported["tool"] == "VLMEvalKit" and reported["task"] == NAMES[task]
    with peer.open() as f:
        table = list(csv.DictReader(f))
    cells = {f"{r['split']}/{k}" if "split" in r else k: float(v) for r in table for k, v in r.items() if k != "split"}
    assert {k: m["peer"] for k, m in reported["metrics"].items()} == cells
    records = [json.loads(line) for line in (tmp_path / "result.samples.jsonl").read_text().splitlines()]
    rows = rows_of(answers)
    if task == "pope":  # each split that asks a row's question gets its prediction
        by = {(split, r["image_path"], r["question"]): r for r in rows for split in r["category"].split(",")}
        row_of = {rec["id"]: by[(rec["group"], rec["metadata"]["image"], rec["metadata"]["question"])] for rec in records}
    elif task == "mme":
        by = {(r["category"], r["image_path"].rsplit("/", 1)[-1], r["question"]): r for r in rows}
        row_of = {rec["id"]: by[(rec["group"], rec["metadata"]["image"], rec["metadata"]["question"])] for rec in records}
    elif task == "hallusionbench":
        by = {r["index"]: r for r in rows}
        row_of = {rec["id"]: by["_".join(rec["metadata"][k] for k in ("category", "subcategory", "visual_input", "set_id", "figure_id", "question_id"))]
                  for rec in records}
    else:
        by = {r["index"]: r for r in rows}
        row_of = {rec["id"]: by[str(rec["metadata"]["amber_id"])] for rec in records}
        repeated = {"6383", "6384", "8401", "8402", "9390"}  # asked twice word for word: matched in file order, same truth
        assert all(row_of[i]["answer"] == rec["target"] for rec in records if (i := rec["id"]) in repeated)
        row_of = {i: r for i, r in row_of.items() if i not in repeated}
    assert all(rec["response"] == row_of[rec["id"]]["prediction"] for rec in records if rec["id"] in row_of)
    if task != "hallusionbench":  # VLMEvalKit's reading vs the official parser's, item by item
        to_ours = {"Yes": "yes", "No": "no", "Unknown": "other" if task == "mme" else None}
        differ = sum(to_ours[extracted[NAMES[task]][row_of[rec["id"]]["index"]]] != rec["parsed"] for rec in records if rec["id"] in row_of)
        assert reported["differing_items"]["count"] >= differ > 0
    else:
        assert result["metrics"]["no_original"] == 360 and result["metrics"]["lh"] is None  # VS edited figures lack their no-figure answer
        assert "holds 951 of the 1129 questions" in done.stderr


def test_pope_predictions_score_like_the_same_answers_in_llava_format(shared_benchmarks, cases, tmp_path):
    pope = shared_benchmarks / "pope"
    rows = rows_of(cases["pope"][".xlsx"])
    by = {(split, r["image_path"], r["question"]): r["prediction"] for r in rows for split in r["category"].split(",")}
    llava = tmp_path / "answers.jsonl"
    with llava.open("w") as f:
        for split in ("adversarial", "popular", "random"):
            for line in (pope / f"coco_pope_{split}.json").read_text().splitlines():
                q = json.loads(line)
                f.write(json.dumps({"question_id": f"{split}-{q['question_id']}", "text": by[(split, q["image"], q["text"])]}) + "\n")
    results = []
    for answers, fmt in ((cases["pope"][".xlsx"], "vlmevalkit"), (llava, "official")):
        out = tmp_path / fmt / "result.json"
        done = score("pope", "--data", str(pope), "--format", fmt, "--answers", str(answers), "--out", str(out))
        assert done.returncode == 0, done.stderr
        results.append(json.loads(out.read_text()))
    for key in ("metrics", "groups", "ci", "n", "n_scored"):
        assert results[0][key] == results[1][key], key


def test_pope_predictions_without_an_image_column_are_scored_as_they_state_their_questions(shared_benchmarks, cases, tmp_path):
    rows = rows_of(cases["pope"][".tsv"])
    bare = _write_tsv(tmp_path / "Model_POPE.tsv", [{k: v for k, v in r.items() if k != "image_path"} for r in rows])
    results = []
    for answers in (cases["pope"][".tsv"], bare):
        out = tmp_path / answers.stem / "result.json"
        done = score("pope", "--data", str(shared_benchmarks / "pope"), "--format", "vlmevalkit", "--answers", str(answers),
                     "--peer-results", str(FIXTURES / "TinyModel_POPE_score.csv"), "--out", str(out))
        assert done.returncode == 0, done.stderr
        results.append(json.loads(out.read_text()))
    assert "no image_path / image_source / image_name / image_id column to match the rows to --data: the 9000 questions are scored as the file states them" in done.stderr
    for key in ("metrics", "n", "n_scored"):
        assert results[0][key] == results[1][key], key
    strip = lambda groups: {g: {k: v for k, v in m.items() if k != "ci"} for g, m in groups.items()}  # noqa: E731 - resampled in another unit order
    assert strip(results[0]["groups"]) == strip(results[1]["groups"])
    assert results[0]["peer_reported"]["metrics"] == results[1]["peer_reported"]["metrics"]
    assert results[0]["peer_reported"]["differing_items"]["count"] == results[1]["peer_reported"]["differing_items"]["count"]


def _write_tsv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.slow  # ten CLI runs
def test_files_that_do_not_fit_get_one_clear_error(shared_benchmarks, cases, tmp_path):
    import pandas as pd

    pope = str(shared_benchmarks / "pope")
    rows = rows_of(cases["pope"][".tsv"])

    def fails(answers: Path, *extra: str, task: str = "pope", data: str = pope) -> str:
        done = score(task, "--data", data, "--format", "vlmevalkit", "--answers", str(answers), "--out", str(tmp_path / "r" / "result.json"), *extra)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "r" / "result.json").exists()
        return done.stderr

    no_prediction = tmp_path / "M_POPE.xlsx"
    pd.DataFrame([{k: v for k, v in r.items() if k != "prediction"} for r in rows[:5]]).to_excel(no_prediction, index=False)
    assert "no 'prediction' column" in fails(no_prediction) and "M_POPE.xlsx" in fails(no_prediction)
    twice = _write_tsv(tmp_path / "T_POPE.tsv", rows + rows[:1])
    assert f"row {len(rows) + 2}: index {rows[0]['index']} again (first on row 2): two runs concatenated?" in fails(twice)
    no_image = _write_tsv(tmp_path / "I_POPE.tsv", [r | {"image_path": ""} if i == 1 else r for i, r in enumerate(rows)])
    assert "row 3 (index 1): none of the columns image_path, image_source, image_name, image_id is filled in" in fails(no_image)
    bad_label = _write_tsv(tmp_path / "L_POPE.tsv", [{k: v for k, v in r.items() if k != "image_path"} | {"answer": "maybe"} for r in rows[:2]])
    assert "row 2 (index 0): answer 'maybe': expected Yes or No" in fails(bad_label)
    other = _write_tsv(tmp_path / "O_POPE.tsv", [r | {"question": "Is there a unicorn in the image?"} for r in rows[:3]])
    assert "none of its rows is a question in --data (first: " in fails(other) and "pass the question files the VLMEvalKit run used" in fails(other)
    assert "a VLMEvalKit MME file (by its name); score it with `mmhallu score mme`" in fails(cases["mme"][".tsv"])
    some = _write_tsv(tmp_path / "S_POPE.tsv", rows[:10])
    assert "missing answers" in fails(some)
    bad_split = _write_tsv(tmp_path / "B_POPE.tsv", [rows[0] | {"category": "adversarial,hard"}])
    assert "row 2 (index 0): category 'adversarial,hard': expected POPE splits" in fails(bad_split)
    hb = rows_of(cases["hallusionbench"][".tsv"])
    bad_index = _write_tsv(tmp_path / "H_HallusionBench.tsv", [hb[0] | {"index": "17"}])
    data = str(shared_benchmarks / "hallusionbench" / "HallusionBench.json")
    assert "row 2 (index 17): index is not VLMEvalKit's HallusionBench form" in fails(bad_index, "--parser", "yesno", task="hallusionbench", data=data)
    garbage = tmp_path / "G_POPE.xlsx"
    garbage.write_bytes(b"not a zip")
    assert "G_POPE.xlsx: not a readable xlsx table" in fails(garbage)
