"""MME: the official calculator's parsing and scoring, on real result files and on a quirk fixture."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmhallu_tasks.mme.loaders import COGNITION, PERCEPTION
from mmhallu_tasks.mme.parsers import mme_official
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]


@pytest.mark.parametrize(
    "text,label",
    [
        ("Yes", "yes"), ("no", "no"), ("YES.", "yes"), ("Not really", "no"), ("There is no dog", "other"),
        ("nope", "no"), ("Noo", "no"), ("yess", "yes"), ("The answer is yes", "other"), ("", "other"),
        (" no", "no"), ("  yes", "other"), ("   no", "other"),  # only the first 4 characters are read
        ("I don't know", "other"), ("Yes, there is", "yes"), ("No, there isn't", "no"), ("know", "no"),
    ],
)
def test_mme_official_parser(text, label):
    assert mme_official(text) == label


def official_calculation(folder: Path) -> dict:
    """eval_tool/calculation.py restated: consecutive lines pair up; lines keep their newline when parsed."""
    def parse(pred):
        if pred in ["yes", "no"]:
            return pred
        p = pred[:4]
        return "yes" if "yes" in p else "no" if "no" in p else "other"

    scores = {}
    for name in PERCEPTION + COGNITION:
        lines = open(folder / f"{name}.txt").readlines()
        chunks = [lines[i : i + 2] for i in range(0, len(lines), 2)]
        correct = plus = 0
        for chunk in chunks:
            assert len(chunk) == 2
            right = 0
            for line in chunk:
                _, _, gt, pred = line.split("\t")
                if parse(pred.lower()) == gt.lower():
                    right += 1
            correct += right
            plus += right == 2
        scores[name] = 100 * correct / len(lines) + 100 * plus / len(chunks)
    return scores


@pytest.mark.parametrize("results", ["llava-1.5-13b/results", "example_results_LaVIN"])
def test_score_mme_matches_official_calculation(shared_benchmarks, tmp_path, results):
    folder = shared_benchmarks / "mme" / results
    out = tmp_path / "r.json"
    proc = mmhallu("score", "mme", "--answers", str(folder), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    expected = official_calculation(folder)
    for name, score in expected.items():
        assert result["groups"][name]["score"] == pytest.approx(score, abs=1e-9), name
    assert result["metrics"]["perception"] == pytest.approx(sum(expected[n] for n in PERCEPTION))
    assert result["metrics"]["cognition"] == pytest.approx(sum(expected[n] for n in COGNITION))
    assert result["parser"] == "mme-official"
    if results.startswith("llava"):
        assert round(result["metrics"]["perception"], 1) == 1531.3  # the LLaVA-1.5-13B paper figure
        assert result["groups"]["artwork"]["other"] == 11


def _write(folder: Path, name: str, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_text("".join(l + "\n" for l in lines))


def test_quirk_fixture_hand_worked(tmp_path):
    folder = tmp_path / "res"
    _write(folder, "existence", [
        "a.jpg\tIs there a dog?\tYes\tYes",
        "a.jpg\tIs there a cat?\tNo\tNot really",        # → no: right
        "b.jpg\tIs there a dog?\tYes\tThere is a dog",   # → other: wrong
        "b.jpg\tIs there a cat?\tNo\tNo",
    ])
    _write(folder, "code_reasoning", ["c.png\tq1\tNo\tno", "d.png\tq1\tYes\tyes", "c.png\tq2\tYes\tYes, it is", "d.png\tq2\tNo\tyes"])
    out = tmp_path / "r.json"
    proc = mmhallu("score", "mme", "--answers", str(folder), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "12 subtask file(s) missing, scored the rest" in proc.stderr
    r = json.loads(out.read_text())
    ex = r["groups"]["existence"]
    assert (ex["acc"], ex["acc_plus"], ex["other"], ex["n_images"]) == (0.75, 0.5, 1, 2)
    assert ex["score"] == pytest.approx(125.0)
    cr = r["groups"]["code_reasoning"]  # paired by image, not by line order: c right twice, d once
    assert (cr["acc"], cr["acc_plus"]) == (0.75, 0.5)
    assert r["metrics"]["perception"] == pytest.approx(125.0) and r["metrics"]["cognition"] == pytest.approx(125.0)
    assert r["metrics"]["total"] == pytest.approx(250.0)
    assert r["subtasks_missing"] and "color" in r["subtasks_missing"]


def test_a_failed_question_leaves_its_image_out_whole(tmp_path):
    """A reasoning answer that never closes (`unfinished_reasoning`) on one of an image's two questions stopped the
    whole score with "expected 2 questions, found 1". The image is left out of the metrics with its answered
    question, said so in result.json, the report and the summary line, and the metrics are those of the other
    images; `compare` leaves it out of both runs in the same way."""
    from mmhallu_eval.report.compare import compare_runs
    from mmhallu_eval.report.rundata import load_run

    lines = ["a.jpg\tIs there a dog?\tYes\t<think>a dog, or a wolf", "a.jpg\tIs there a cat?\tNo\tNo",
             "b.jpg\tIs there a dog?\tYes\tYes", "b.jpg\tIs there a cat?\tNo\tYes",
             "c.jpg\tIs there a dog?\tYes\tYes", "c.jpg\tIs there a cat?\tNo\tNo"]
    _write(tmp_path / "res", "existence", lines)
    _write(tmp_path / "rest", "existence", lines[2:])
    proc = mmhallu("score", "mme", "--answers", str(tmp_path / "res"), "--out", str(tmp_path / "base" / "r.json"))
    assert proc.returncode == 0, proc.stderr
    assert "errors=1, units_left_out=1" in proc.stdout
    subprocess.run([*CLI, "score", "mme", "--answers", str(tmp_path / "rest"), "--out", str(tmp_path / "rest.json")], check=True, capture_output=True)
    r, rest = (json.loads((tmp_path / f).read_text()) for f in ("base/r.json", "rest.json"))
    assert r["errors"]["unfinished_reasoning"] == 1 and r["units_left_out"]["units"] == 1 and r["units_left_out"]["answered"] == 1
    assert r["groups"]["existence"] == rest["groups"]["existence"] and r["metrics"] == rest["metrics"]
    assert (r["groups"]["existence"]["acc"], r["groups"]["existence"]["acc_plus"]) == (0.75, 0.5)
    report = mmhallu("report", str(tmp_path / "base" / "r.json"))
    assert report.returncode == 0, report.stderr
    assert 'data-left-out="1">1 units' in (tmp_path / "base" / "r.report.html").read_text()
    # the tuned run answers image a: its unit is still left out of the comparison, since base lost a question of it
    _write(tmp_path / "tuned", "existence", ["a.jpg\tIs there a dog?\tYes\tYes", *lines[1:]])
    subprocess.run([*CLI, "score", "mme", "--answers", str(tmp_path / "tuned"), "--out", str(tmp_path / "tuned.json")], check=True, capture_output=True)
    compared = compare_runs(load_run(tmp_path / "base" / "r.json"), load_run(tmp_path / "tuned.json"))["tasks"]["mme"]
    assert compared["n_excluded_errors"] == 1 and compared["n_left_out_with_unit"] == 1
    assert compared["metrics"]["total"]["base"] == compared["metrics"]["total"]["tuned"] == rest["metrics"]["total"]
    # an answer a file lacks (`score --allow-missing` on another tool's output) leaves its image out the same way
    from mmhallu_eval.registry import get_task
    from mmhallu_eval.scoring import ResultBuilder, iter_scored_texts

    spec = get_task("mme")
    samples, match = spec.read_answers(tmp_path / "tuned", spec.parse_options({}))
    texts = {k: v for k, v in match.texts.items() if k != samples[0].id}
    builder = ResultBuilder(spec)
    builder.unanswered([samples[0]])
    for record in iter_scored_texts(spec, spec.parser(None), samples, texts):
        builder.add(record)
    missing = builder.result(spec.parser(None))
    assert missing["metrics"] == rest["metrics"] and missing["units_left_out"]["answered"] == 1 and missing["n"] == 5


@pytest.mark.parametrize(
    "name,lines,message",
    [
        ("existence", ["a.jpg\tq\tYes\tyes", "a.jpg\tq2\tNo\tno", "b.jpg\tq\tYes\tyes"], "MME existence image b.jpg: expected 2 questions, found 1"),
        ("existence", ["a.jpg\tq\tMaybe\tyes", "a.jpg\tq2\tNo\tno"], "existence.txt:1: ground truth must be Yes or No"),
        ("existence", ["a.jpg\tq\tYes", "a.jpg\tq2\tNo\tno"], "existence.txt:1: expected 4 tab-separated fields, found 3"),
        ("existance", ["a.jpg\tq\tYes\tyes", "a.jpg\tq2\tNo\tno"], "unknown MME subtask 'existance'"),
    ],
)
def test_bad_result_files_fail_clearly(tmp_path, name, lines, message):
    folder = tmp_path / "res"
    _write(folder, name, lines)
    proc = mmhallu("score", "mme", "--answers", str(folder), "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 2
    assert message in proc.stderr


def test_run_mme_end_to_end_writes_official_results(tiny_llava, mme_fixture, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [*CLI, "run", "--model", str(tiny_llava), "--tasks", "mme", "--out", str(out), "--task-arg", f"mme.data={mme_fixture}",
         "--max-new-tokens", "4", "--no-progress", "--limit", "7"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "mme/result.json").read_text())
    assert result["n"] == 8, "--limit keeps whole images: 7 questions → 4 images"
    assert set(result["groups"]) == {"existence"}
    official = (out / "mme/official_results/existence.txt").read_text().splitlines()
    assert len(official) == 8 and all(len(l.split("\t")) == 4 for l in official)
    # the official files written by the run score to the same result
    rescored = tmp_path / "rescored.json"
    proc = mmhallu("score", "mme", "--answers", str(out / "mme/official_results"), "--out", str(rescored))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(rescored.read_text())["groups"]["existence"]["score"] == pytest.approx(result["groups"]["existence"]["score"])


def test_release_layout_loader(tmp_path):
    """MME_Benchmark_release_version: images/ + questions_answers_YN/ per subtask, or images and .txt side by side."""
    from PIL import Image

    from mmhallu_eval import get_task

    root = tmp_path / "MME_Benchmark_release_version"
    (root / "artwork" / "images").mkdir(parents=True)
    (root / "artwork" / "questions_answers_YN").mkdir()
    Image.new("RGB", (8, 8)).save(root / "artwork" / "images" / "10002.jpg")
    (root / "artwork" / "questions_answers_YN" / "10002.txt").write_text("Is this a painting? Please answer yes or no.\tYes\nIs this glassware? Please answer yes or no.\tNo\n")
    (root / "count").mkdir()
    Image.new("RGB", (8, 8)).save(root / "count" / "000000006040.png")
    (root / "count" / "000000006040.txt").write_text("Are there two dogs? Please answer yes or no.\tNo\nIs there one dog? Please answer yes or no.\tYes\n")
    samples = get_task("mme").load({"data": str(root)})
    assert [(s.group, s.metadata["image"], s.target) for s in samples] == [
        ("count", "000000006040.png", "no"), ("count", "000000006040.png", "yes"), ("artwork", "10002.jpg", "yes"), ("artwork", "10002.jpg", "no"),
    ]
    assert all(Path(s.images[0]).is_file() for s in samples)
