"""RePOPE: `mmhallu score repope` equals RePOPE's own eval_utils on both label sets; removed questions are counted,
not scored; `mmhallu run --tasks repope` end to end."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from parity_cases import repope_answers
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
OFFICIAL = json.loads((Path(__file__).parents[1] / "fixtures" / "parity" / "repope_official.json").read_text())
NAMES = {"tp": "TP", "fp": "FP", "tn": "TN", "fn": "FN", "precision": "Precision", "recall": "Recall", "f1": "F1",
         "accuracy": "ACC", "yes_ratio": "Yes Ratio"}


def score(*args: str) -> subprocess.CompletedProcess:
    return mmhallu("score", "repope", *args)


@pytest.mark.parametrize("variant, pattern", [("RePOPE", "coco_repope_{}.json"), ("POPE", "coco_pope_{}.json")])
def test_score_equals_official_eval_utils(shared_benchmarks, tmp_path, variant, pattern):
    folder = shared_benchmarks / "repope"
    answers = repope_answers(folder, tmp_path / "answers.jsonl")
    data = ",".join(str(folder / pattern.format(s)) for s in ("adversarial", "popular", "random"))
    done = score("--data", data, "--answers", str(answers), "--out", str(tmp_path / "result.json"), "--allow-missing")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["parser"] == "repope-official"
    for split, official in OFFICIAL[variant].items():
        group = result["groups"][split]
        for ours, theirs in NAMES.items():
            assert group[ours] == official[theirs], (split, ours)
        assert group["unparsed"] == group["n"] - (official["TP"] + official["FP"] + official["TN"] + official["FN"])
    if variant == "RePOPE":  # the 815 questions RePOPE removed are counted and listed, not scored, not an error
        assert result["removed_answers"] == 9000 - (2684 + 2727 + 2774)
        assert result["unknown_answers"] == 0
        assert "are to questions RePOPE removed" in done.stderr
        assert result["n"] == 2684 + 2727 + 2774


def test_removed_answers_need_no_allow_missing_but_unknown_ids_do(shared_benchmarks, tmp_path):
    folder = shared_benchmarks / "repope"
    answers = repope_answers(folder, tmp_path / "answers.jsonl")
    done = score("--data", str(folder), "--answers", str(answers), "--out", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    with answers.open("a") as fh:
        fh.write(json.dumps({"question_id": "random-99999", "text": "Yes"}) + "\n")
    done = score("--data", str(folder), "--answers", str(answers), "--out", str(tmp_path / "r2.json"))
    assert done.returncode == 2 and "1 answer ids not in the data (first: random-99999)" in done.stderr


def test_llava_answers_keyed_by_its_merged_questions_file(shared_benchmarks, tmp_path):
    """LLaVA-1.5-13B's published POPE answers carry the ids of llava_pope_test.jsonl (made from POPE's files of an
    earlier commit): with repope.questions each is found by split, image and question. The scores equal those of the
    same answers re-keyed here by a join of their own, and every answer is accounted for."""
    llava, folder = shared_benchmarks / "pope" / "llava-1.5-13b", shared_benchmarks / "repope"
    questions = {}
    for line in (llava / "llava_pope_test.jsonl").read_text().splitlines():
        q = json.loads(line)
        questions[q["question_id"]] = (q["category"], q["image"], q["text"].split("\n")[0])
    labelled = {}
    for split in ("adversarial", "popular", "random"):
        for line in (folder / f"coco_repope_{split}.json").read_text().splitlines():
            row = json.loads(line)
            labelled[split, row["image"], row["text"]] = f"{split}-{row['question_id']}"
    answers = [json.loads(line) for line in (llava / "answers_llava-v1.5-13b.jsonl").read_text().splitlines()]
    rekeyed = tmp_path / "rekeyed.jsonl"
    rekeyed.write_text("".join(json.dumps({"question_id": labelled[questions[a["question_id"]]], "text": a["text"]}) + "\n"
                               for a in answers if questions[a["question_id"]] in labelled))
    expected = score("--data", str(folder), "--answers", str(rekeyed), "--out", str(tmp_path / "e.json"), "--allow-missing")
    assert expected.returncode == 0, expected.stderr
    args = ("--data", str(folder), "--questions", str(llava / "llava_pope_test.jsonl"), "--answers", str(llava / "answers_llava-v1.5-13b.jsonl"))
    refused = score(*args, "--out", str(tmp_path / "r.json"))
    assert refused.returncode == 2 and "that the label files do not ask" in refused.stderr
    done = score(*args, "--out", str(tmp_path / "r.json"), "--allow-missing")
    assert done.returncode == 0, done.stderr
    got, want = json.loads((tmp_path / "r.json").read_text()), json.loads((tmp_path / "e.json").read_text())
    assert got["metrics"] == want["metrics"] and got["groups"] == want["groups"] and got["ci"] == want["ci"]
    scored = sum(1 for a in answers if questions[a["question_id"]] in labelled)
    assert got["n"] == scored == 7863
    assert got["removed_answers"] + got["unknown_answers"] + scored == len(answers) == 8910
    assert got["removed_answers"] == 801 and got["missing_answers"] == 2684 + 2727 + 2774 - scored


def test_questions_file_is_for_scoring_only(pope_fixture, tmp_path):
    done = mmhallu("run", "--model", str(tmp_path / "m"), "--tasks", "repope", "--out", str(tmp_path / "r"),
                           "--task-arg", f"repope.data={pope_fixture}", "--task-arg", f"repope.questions={pope_fixture}/q.jsonl")
    assert done.returncode == 2 and "repope.questions maps saved answers" in done.stderr


def test_parser_reads_substrings_like_eval_utils():
    from mmhallu_tasks.repope.task import repope_official

    assert repope_official("Yes, but no.") == "yes"
    assert repope_official("There is snow.") == "no"  # "no" inside "snow"
    assert repope_official("I don't know") == "no"
    assert repope_official("Maybe") is None
    assert repope_official("NOT visible") == "no"


def test_bad_label_file_names_line(tmp_path):
    bad = tmp_path / "coco_repope_random.json"
    bad.write_text(json.dumps({"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "label": "maybe"}) + "\n")
    (tmp_path / "a.jsonl").write_text(json.dumps({"question_id": 1, "text": "Yes"}) + "\n")
    done = score("--data", str(bad), "--answers", str(tmp_path / "a.jsonl"), "--out", str(tmp_path / "r.json"))
    assert done.returncode == 2 and f"{bad}:1: label must be 'yes' or 'no'" in done.stderr


def test_default_data_without_network_is_a_clear_error(tmp_path, monkeypatch):
    from mmhallu_eval import get_task

    monkeypatch.setenv("MMHALLU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(Exception, match="could not download https://raw.githubusercontent.com/YanNeu/RePOPE/bcf22e5") as err:
        get_task("repope").load({})
    # the error says both ways round it: where to put the file, and which option and flags take a local copy
    message = str(err.value)
    assert str(tmp_path / "cache" / "repope") in message
    assert "repope.data" in message and "mmhallu score repope --data" in message and "--task-arg repope.data=" in message


def test_pinned_download_is_checked_and_cached(shared_benchmarks, tmp_path, monkeypatch):
    """The published files come from the cache once they are there with the pinned digest."""
    from mmhallu_eval import get_task
    from mmhallu_tasks.repope.loaders import COMMIT

    cache = tmp_path / "cache" / "repope" / COMMIT[:7]
    cache.mkdir(parents=True)
    for path in (shared_benchmarks / "repope").glob("*.json"):
        (cache / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("MMHALLU_CACHE", str(tmp_path / "cache"))
    samples = get_task("repope").load({})
    assert len(samples) == 2684 + 2727 + 2774
    samples = get_task("repope").load({"data": "pope"})
    assert len(samples) == 9000


def test_run_end_to_end(tiny_llava, pope_fixture, tmp_path):
    data = tmp_path / "repope"
    data.mkdir()
    for split in ("random", "adversarial"):
        rows = (pope_fixture / f"shapes_pope_{split}.json").read_text().splitlines()
        (data / f"shapes_pope_{split}.json").write_text("\n".join(rows) + "\n")
        (data / f"shapes_repope_{split}.json").write_text("\n".join(rows[1:]) + "\n")  # RePOPE drops a question
    out = tmp_path / "run"
    done = mmhallu("run", "--model", str(tiny_llava), "--tasks", "repope", "--out", str(out),
                           "--task-arg", f"repope.data={data}", "--task-arg", f"repope.images={pope_fixture / 'images'}",
                           "--device", "cpu", "--dtype", "float32", "--no-progress")
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "repope" / "result.json").read_text())
    n = sum(len((data / f"shapes_repope_{s}.json").read_text().splitlines()) for s in ("random", "adversarial"))
    assert result["n"] == n and set(result["groups"]) == {"random", "adversarial"}
    assert result["parser"] == "repope-official"
    group = result["groups"]["random"]
    assert group["n"] == group["tp"] + group["fp"] + group["tn"] + group["fn"] + group["unparsed"]
