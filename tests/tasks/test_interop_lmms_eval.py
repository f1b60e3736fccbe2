"""`mmhallu score pope --format lmms-eval` on real lmms-eval 0.7.3 logs: the same numbers as the same answers in
LLaVA's format, lmms-eval's reported numbers beside the official ones, and clear errors for logs that do not fit."""
import json
import subprocess
import sys

import pytest
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
RUNS = {"pope_b1_r1": "20261202_040846", "pope_b8_r1": "20261202_041543"}


@pytest.fixture
def interop(shared_benchmarks):
    return shared_benchmarks / "interop" / "lmms-eval"


def score(*args: str) -> subprocess.CompletedProcess:
    return mmhallu("score", "pope", *args)


def load(path):
    return json.loads(path.read_text())


@pytest.mark.parametrize("run", sorted(RUNS))
def test_lmms_eval_log_scores_like_the_same_answers_in_llava_format(interop, tmp_path, run):
    log = interop / run / f"{RUNS[run]}_samples_pope.jsonl"
    results = interop / run / f"{RUNS[run]}_results.json"
    done = score("--data", str(interop), "--format", "auto", "--answers", str(log), "--peer-results", str(results), "--out", str(tmp_path / "a" / "result.json"))
    assert done.returncode == 0, done.stderr
    assert "read as lmms-eval" in done.stderr
    # the same answers in LLaVA's format: lmms-eval's doc order is adversarial, popular, random
    questions = [json.loads(x) | {"split": s} for s in ("adversarial", "popular", "random") for x in (interop / f"shapes_pope_{s}.json").read_text().splitlines()]
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    llava = tmp_path / "answers.jsonl"
    llava.write_text("".join(json.dumps({"question_id": f"{questions[r['doc_id']]['split']}-{questions[r['doc_id']]['question_id']}",
                                         "text": r["filtered_resps"]}) + "\n" for r in lines))
    done = score("--data", str(interop), "--answers", str(llava), "--out", str(tmp_path / "b" / "result.json"))
    assert done.returncode == 0, done.stderr
    a, b = load(tmp_path / "a" / "result.json"), load(tmp_path / "b" / "result.json")
    for key in ("metrics", "groups", "ci", "n", "n_scored"):
        assert a[key] == b[key], key
    assert a["answers_format"] == "lmms-eval:pope" and b["answers_format"] == "official"
    peer = a["peer_reported"]
    assert peer["tool"] == "lmms-eval" and peer["task"] == "pope"
    reported = load(results)["results"]["pope"]
    yes = peer["metrics"]["pope_yes_ratio"]
    assert yes["peer"] == reported["pope_yes_ratio,none"] == 0.5  # lmms-eval: the share of yes labels
    assert yes["official"] == a["metrics"]["yes_ratio"] != yes["peer"] and yes["delta"] == pytest.approx(yes["official"] - 0.5)
    assert peer["metrics"]["pope_f1_score"]["official"] == a["metrics"]["f1"]
    assert peer["differing_items"]["compared"] == 306


def test_peer_page_shows_the_second_opinion(interop, tmp_path):
    run = "pope_b1_r1"
    done = score("--data", str(interop), "--format", "lmms-eval", "--answers", str(interop / run / f"{RUNS[run]}_samples_pope.jsonl"),
                 "--peer-results", str(interop / run / f"{RUNS[run]}_results.json"), "--out", str(tmp_path / "s" / "result.json"))
    assert done.returncode == 0, done.stderr
    done = mmhallu("report", str(tmp_path / "s"), "--out", str(tmp_path / "page.html"))
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "page.html").read_text()
    assert "Second opinion: lmms-eval" in page and "pope_yes_ratio" in page


def test_differing_parses_are_listed(interop, tmp_path):
    log = interop / "pope_b1_r1" / f"{RUNS['pope_b1_r1']}_samples_pope.jsonl"
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    lines[0]["filtered_resps"] = "No, there is not."  # lmms-eval's exact match would not read this as no
    lines[0]["pope_accuracy"]["prediction"] = "no, there is not."
    changed = tmp_path / "20261202_040846_samples_pope.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in lines))
    done = score("--data", str(interop), "--format", "lmms-eval", "--answers", str(changed),
                 "--peer-results", str(interop / "pope_b1_r1" / f"{RUNS['pope_b1_r1']}_results.json"), "--out", str(tmp_path / "o" / "r.json"))
    assert done.returncode == 0, done.stderr
    differ = load(tmp_path / "o" / "r.json")["peer_reported"]["differing_items"]
    assert differ["count"] == 1 and differ["first"][0] == {"id": "adversarial-1", "peer": "no, there is not.", "official": "no",
                                                            "response": "No, there is not."}


def _log(tmp_path, lines, name="20261202_040846_samples_pope.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


@pytest.mark.parametrize("case, message", [
    ("other_task", "a log of lmms-eval task 'mme', not one `mmhallu score pope` reads (pope, pope_adv, pope_pop, pope_random)"),
    ("duplicate", ":307: doc_id 0 again (first on line 1): two runs concatenated?"),
    ("several", ":1: filtered_resps holds 2 answers"),
    ("short_data", ":103: doc_id 102, but --data has 102 questions for lmms-eval task 'pope'"),
    ("wrong_order", ":1: doc_id 0 is 'Is there a cross in the image?"),
])
def test_bad_logs_are_named(interop, tmp_path, case, message):
    log = interop / "pope_b1_r1" / f"{RUNS['pope_b1_r1']}_samples_pope.jsonl"
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    data = str(interop)
    name = "20261202_040846_samples_pope.jsonl"
    if case == "other_task":
        name = "20261202_040846_samples_mme.jsonl"
    elif case == "duplicate":
        lines = lines + lines
    elif case == "several":
        lines[0]["filtered_resps"] = ["Yes", "No"]
    elif case == "short_data":
        data = str(interop / "shapes_pope_adversarial.json")
    elif case == "wrong_order":
        data = str(interop / "shapes_pope_random.json")
        lines = [r for r in lines if r["doc_id"] < 102]
    (tmp_path / "logs").mkdir()
    path = _log(tmp_path / "logs", lines, name)
    done = score("--data", data, "--format", "lmms-eval", "--answers", str(path), "--out", str(tmp_path / "o" / "r.json"))
    assert done.returncode == 2, done.stdout
    assert message in done.stderr, done.stderr


def test_split_task_log_maps_to_its_split(interop, tmp_path):
    log = interop / "pope_b1_r1" / f"{RUNS['pope_b1_r1']}_samples_pope.jsonl"
    lines = [json.loads(x) for x in log.read_text().splitlines()][204:]
    for i, r in enumerate(lines):
        r["doc_id"] = i
    path = _log(tmp_path, lines, "20261202_040846_samples_pope_random.jsonl")
    done = score("--data", str(interop / "shapes_pope_random.json"), "--format", "lmms-eval", "--answers", str(path), "--out", str(tmp_path / "o" / "r.json"))
    assert done.returncode == 0, done.stderr
    assert load(tmp_path / "o" / "r.json")["n"] == 102


def test_a_results_file_without_the_tasks_numbers_is_named(interop, tmp_path):
    """results["pope"] that is not an object was an AttributeError traceback; one with no "<metric>,none" number
    wrote a result.json comparing nothing."""
    log = interop / "pope_b1_r1" / f"{RUNS['pope_b1_r1']}_samples_pope.jsonl"
    peer = tmp_path / "peer_results.json"
    for results, message in (({"pope": 5}, "results['pope'] is not an object"),
                             ({"pope": {"pope_accuracy,none": "high", "pope_f1_score,other": 0.9}}, "results['pope'] has no number under")):
        peer.write_text(json.dumps({"results": results}))
        done = score("--data", str(interop), "--format", "auto", "--answers", str(log), "--peer-results", str(peer), "--out", str(tmp_path / "o" / "r.json"))
        assert done.returncode == 2 and f"error: {peer}: {message}" in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()
