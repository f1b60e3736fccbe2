"""`mmhallu score mme|hallusionbench|amber --format lmms-eval` on logs written by lmms-eval 0.7.3's own task code
(tests/fixtures/parity/lmms_eval): every line lands on its own question, and lmms-eval's reported numbers sit beside
the official ones."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from parity_cases import amber_vectors

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "lmms_eval"


def log(tmp_path: Path, task: str, edit=None) -> tuple[Path, list[dict]]:
    name = f"20261203_000000_samples_{task}.jsonl"
    lines = [json.loads(x) for x in gzip.decompress((FIXTURES / f"{name}.gz").read_bytes()).decode().splitlines()]
    if edit:
        lines = edit(lines)
    path = tmp_path / name
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path, lines


def score(task: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "score", task, *args], capture_output=True, text=True)


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in out.with_name(out.stem + ".samples.jsonl").read_text().splitlines()]


def test_mme_log_lines_land_on_their_questions_and_match_lmms_evals_scores(shared_benchmarks, tmp_path):
    path, lines = log(tmp_path, "mme")
    out = tmp_path / "r" / "result.json"
    done = score("mme", "--data", str(shared_benchmarks / "mme" / "questions"), "--format", "auto", "--answers", str(path),
                 "--peer-results", str(FIXTURES / "20261203_000000_results_mme.json"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["answers_format"] == "lmms-eval:mme" and result["n"] == 2374 and result["missing_answers"] == 0
    by = {(x[k]["question_id"], x["input"].split("\n")[0]): x["filtered_resps"] for x in lines for k in x if k.startswith("mme_")}
    for r in records(out):
        question = r["metadata"]["question"].replace(" Please answer yes or no.", "")
        assert r["response"] == by[(f"{r['group']}/{r['metadata']['image']}", question)]
    peer = result["peer_reported"]["metrics"]
    # on these answers lmms-eval's MME parser and aggregation agree with the official calculation
    assert peer["mme_perception_score"]["official"] == result["metrics"]["perception"] and peer["mme_perception_score"]["delta"] == pytest.approx(0, abs=1e-9)
    assert peer["mme_cognition_score"]["delta"] == pytest.approx(0, abs=1e-9)


def test_hallusion_bench_image_log_scores_the_questions_with_a_figure(shared_benchmarks, tmp_path):
    path, lines = log(tmp_path, "hallusion_bench_image")
    out = tmp_path / "r" / "result.json"
    done = score("hallusionbench", "--data", str(shared_benchmarks / "hallusionbench" / "HallusionBench.json"), "--parser", "yesno",
                 "--format", "lmms-eval", "--answers", str(path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "holds 951 of the 1129 questions" in done.stderr
    result = json.loads(out.read_text())
    assert result["n"] == 951 and result["missing_answers"] == 0 and result["metrics"]["no_original"] == 360
    ids = ("category", "subcategory", "set_id", "figure_id", "question_id")
    by = {tuple(x["aAcc"][k] for k in ids): x["filtered_resps"] for x in lines}
    assert all(r["response"] == by[tuple(r["metadata"][k] for k in ids)] for r in records(out))


@pytest.mark.slow  # spaCy / NLTK scoring of a whole log
def test_amber_g_log_in_dataset_order_with_its_truth_checked(shared_benchmarks, tmp_path):
    vectors = amber_vectors(shared_benchmarks / "amber", tmp_path / "vectors")
    path, lines = log(tmp_path, "amber_g")
    out = tmp_path / "r" / "result.json"
    args = ["--data", str(shared_benchmarks / "amber"), "--spacy-model", str(vectors), "--evaluation-type", "g", "--format", "lmms-eval"]
    done = score("amber", *args, "--answers", str(path), "--peer-results", str(FIXTURES / "20261203_000000_results_amber.json"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["answers_format"] == "lmms-eval:amber_g" and result["n"] == 1004
    assert [r["response"] for r in sorted(records(out), key=lambda r: int(r["id"]))] == [x["filtered_resps"] for x in lines]
    peer = result["peer_reported"]["metrics"]
    table = result["metrics"]["official_table"]["generative"]
    assert {k: m["official"] for k, m in peer.items()} == {f"amber_{k.lower()}": v for k, v in table.items()}
    # lmms-eval's port starts every query's counters at 0.001 and does not round: close to the official printout, not equal
    assert all(0 < abs(m["delta"]) < 0.1 for m in peer.values())
    swapped, _ = log(tmp_path, "amber_g", lambda xs: [xs[1] | {"doc_id": 0}, xs[0] | {"doc_id": 1}, *xs[2:]])
    done = score("amber", *args, "--answers", str(swapped), "--out", str(tmp_path / "s" / "result.json"))
    assert done.returncode == 2 and f"{swapped}:1: doc_id 0 is an image with truth" in done.stderr and "Traceback" not in done.stderr


def test_lines_that_are_not_the_datas_questions_get_clear_errors(shared_benchmarks, tmp_path):
    data = str(shared_benchmarks / "mme" / "questions")
    other, _ = log(tmp_path, "mme", lambda xs: [x | {"input": "Is this a unicorn?"} for x in xs])
    done = score("mme", "--data", data, "--format", "lmms-eval", "--answers", str(other), "--out", str(tmp_path / "a" / "r.json"))
    assert done.returncode == 2 and "none of its lines is a question in --data" in done.stderr
    broken, _ = log(tmp_path, "mme", lambda xs: [{k: v for k, v in x.items() if not k.startswith("mme_")} for x in xs[:2]])
    done = score("mme", "--data", data, "--format", "lmms-eval", "--answers", str(broken), "--out", str(tmp_path / "b" / "r.json"))
    assert done.returncode == 2 and f"{broken}:1: doc_id 0: not a line of lmms-eval task 'mme'" in done.stderr
    done = score("pope", "--data", str(shared_benchmarks / "pope"), "--format", "lmms-eval", "--answers", str(other), "--out", str(tmp_path / "c" / "r.json"))
    assert done.returncode == 2 and "a log of lmms-eval task 'mme', not one `mmhallu score pope` reads" in done.stderr


@pytest.mark.slow  # spaCy / NLTK scoring of a whole log
def test_coco_cap_chair_log_scores_its_own_images_and_matches_opera(shared_benchmarks, tmp_path):
    opera = shared_benchmarks / "chair" / "opera_captions"
    path, lines = log(tmp_path, "coco_cap_chair")
    out = tmp_path / "r" / "result.json"
    done = score("chair", "--gt", str(opera / "gt_objects.json"), "--format", "auto", "--answers", str(path),
                 "--peer-results", str(FIXTURES / "20261203_000000_results_chair.json"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["answers_format"] == "lmms-eval:coco_cap_chair" and result["n"] == 500
    # the same captions in OPERA's format give the same numbers; lmms-eval's own CHAIR agrees on them
    done = score("chair", "--gt", str(opera / "gt_objects.json"), "--answers", str(opera / "llava-1.5" / "greedy.jsonl"), "--out", str(tmp_path / "o" / "result.json"))
    assert done.returncode == 0, done.stderr
    official = json.loads((tmp_path / "o" / "result.json").read_text())
    for key in ("metrics", "ci", "n", "n_scored"):
        assert result[key] == official[key], key
    assert {k: m["delta"] for k, m in result["peer_reported"]["metrics"].items()} == {"coco_cap_chair_i": 0.0, "coco_cap_chair_s": 0.0, "coco_cap_recall": 0.0}
    broken, _ = log(tmp_path, "coco_cap_chair", lambda xs: [{k: v for k, v in x.items() if not k.startswith("coco_cap_")} for x in xs[:1]])
    done = score("chair", "--gt", str(opera / "gt_objects.json"), "--format", "lmms-eval", "--answers", str(broken), "--out", str(tmp_path / "b" / "r.json"))
    assert done.returncode == 2 and f"{broken}:1: no coco_cap_chair_i / coco_cap_chair_s / coco_cap_recall object" in done.stderr
