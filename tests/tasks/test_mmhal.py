"""MMHal-Bench: official prompt and rating rule, a real OpenAI client against a local scripted server."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from judge_server import JudgeServer
from mmhallu_tasks.mmhal.task import TEMPLATE, judge_prompt, mmhal_official
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]


@pytest.mark.parametrize(
    "reply,rating",
    [("Rating: 5, very informative", 5), ("rating: 0", 0), ("Rating:5", None), ("**Rating**: 4", None), ("Rating: 10", 1),
     ("Rating: 2 ... Rating: 5", None), ("no rating here", None), ("RATING: 6", 6)],
)
def test_official_rating_rule(reply, rating):
    assert mmhal_official(reply) == rating


def test_prompt_is_the_official_template():
    assert TEMPLATE.startswith("Please act as an impartial and objective judge")
    assert "cautious during evalutation" in TEMPLATE  # the original's typo is part of the prompt
    item = {"image_content": ["Fire hydrant", "Tree"], "question": "Q?", "gt_answer": "GT.", "question_type": "attribute"}
    prompt = judge_prompt(item, "ANSWER")
    assert prompt.endswith("### Image Contents\nFire hydrant, Tree\n\n### Question\nQ?\n\n### Standard Human-Generated Answer\nGT.\n\n### LMM Response to Evaluate\nANSWER\n")


def _responses(tmp_path: Path, shared: Path, answers: list[str]) -> Path:
    items = json.loads((shared / "mmhal/response_template.json").read_text())
    for item, a in zip(items, answers):
        item["model_answer"] = a
    path = tmp_path / "response.json"
    path.write_text(json.dumps(items))
    return path


def _score(path, out, server, *extra):
    return subprocess.run(
        [*CLI, "score", "mmhal", "--answers", str(path), "--out", str(out), "--judge-base-url", server.url, "--judge-model", "judge-x", *extra],
        capture_output=True, text=True, env={**__import__("os").environ, "OPENAI_API_KEY": "sk-test-secret"},
    )


def test_score_with_local_server_formats_retries_and_cache(shared_benchmarks, tmp_path):
    answers = [f"RATE={i % 7}" for i in range(96)]
    answers[1] = "NORATING"
    answers[2] = "MULTI"
    answers[3] = "RATE=5 FAIL500:2"   # recovers after two 500s
    answers[4] = "RATE=6 FAIL429:1"   # recovers after a 429
    answers[5] = "RATE=1 SLOW:1"      # first call times out
    answers[6] = "RATE=3 FAIL500:99"  # never recovers → judge_error
    path = _responses(tmp_path, shared_benchmarks, answers)
    out = tmp_path / "result.json"
    with JudgeServer(slow_seconds=3) as server:
        proc = _score(path, out, server, "--concurrency", "4", "--backoff", "0.05", "--timeout", "1")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(out.read_text())
        assert result["errors"]["total"] == 1 and result["errors"]["judge_error"] == 1 and result["n_scored"] == 95
        assert result["metrics"]["unparsed_ratings"] == 2
        assert result["judge"] == {"kind": "openai", "model": "judge-x", "base_url": server.url}
        assert result["prompt_version"] and result["parser"] == "mmhal-official"
        ratings = [i % 7 for i in range(96)]
        ratings[1] = ratings[2] = 0
        ratings[3], ratings[4], ratings[5] = 5, 6, 1
        kept = [r for i, r in enumerate(ratings) if i != 6]
        assert result["metrics"]["average_score"] == pytest.approx(sum(kept) / 95)
        assert result["metrics"]["hallucination_rate"] == pytest.approx(sum(r < 3 for r in kept) / 95)
        assert set(result["groups"]) == {"attribute", "adversarial", "comparison", "counting", "relation", "environment", "holistic", "other"}
        calls_first = server.total
        # rerun: every rated item comes from the judge cache; only the failed one is asked again
        proc = _score(path, out, server, "--backoff", "0.05", "--timeout", "1")
        assert proc.returncode == 0, proc.stderr
        assert server.total - calls_first == 6  # item 6: 1 try + 5 retries, still failing
        samples = [json.loads(l) for l in out.with_name("result.samples.jsonl").read_text().splitlines()]
        assert "judge_error" in samples[6]["error"] and samples[1]["judge_reply"].startswith("The answer looks fine")
    assert "sk-test-secret" not in out.read_text() and "sk-test-secret" not in out.with_name("result.samples.jsonl").read_text()


def test_score_from_saved_judge_replies_matches_official_averages(shared_benchmarks, tmp_path):
    """Saved replies in the official evaluation-file shape (a list of OpenAI responses); no judge calls."""
    items = json.loads((shared_benchmarks / "mmhal/responses_llava_7b.json").read_text())
    replies = [f"Explanation. Rating: {(i * 5) % 7}" for i in range(96)]
    replies[10] = "Rating:3 (no space: the official rule reads no rating → 0)"
    saved = tmp_path / "replies.json"
    saved.write_text(json.dumps([{"choices": [{"message": {"content": r}}]} for r in replies]))
    path = tmp_path / "response.json"
    path.write_text(json.dumps(items))
    out = tmp_path / "r.json"
    proc = mmhallu("score", "mmhal", "--answers", str(path), "--judge-replies", str(saved), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    # eval_gpt4.py's summary, restated: scores, hallucination = score < 3, per type = index mod 8
    scores = []
    for r in replies:
        found = [s for s in range(7) if f"rating: {s}" in r.lower()]
        scores.append(found[0] if len(found) == 1 else 0)
    assert result["metrics"]["average_score"] == pytest.approx(sum(scores) / 96)
    assert result["metrics"]["hallucination_rate"] == pytest.approx(sum(s < 3 for s in scores) / 96)
    types = ["attribute", "adversarial", "comparison", "counting", "relation", "environment", "holistic", "other"]
    for k, name in enumerate(types):
        per_type = [scores[i] for i in range(96) if i % 8 == k]
        assert result["groups"][name]["average_score"] == pytest.approx(sum(per_type) / len(per_type))
    assert result["judge"]["kind"] == "saved-replies"
    # a reply without text (no choices, a null content: eval_gpt4.py fails on it too) is named, not an IndexError
    for damaged in ({"choices": []}, {"choices": [{"message": {"content": None}}]}, {"content": 3}):
        saved.write_text(json.dumps([{"choices": [{"message": {"content": r}}]} for r in replies[:5]] + [damaged] + [r for r in replies[6:]]))
        proc = mmhallu("score", "mmhal", "--answers", str(path), "--judge-replies", str(saved), "--out", str(tmp_path / "bad.json"))
        assert proc.returncode == 2 and f"error: {saved}: reply 5 has no text" in proc.stderr, proc.stderr
    # an item without a text answer, scored with --allow-missing, keeps its reply's place: the official file's 96
    # replies still fit (before: "expected a JSON list of 95 judge replies", or an IndexError); 95 replies do not
    saved.write_text(json.dumps([{"choices": [{"message": {"content": r}}]} for r in replies]))
    path.write_text(json.dumps([{**item, "model_answer": None} if i == 3 else item for i, item in enumerate(items)]))
    args = [*CLI, "score", "mmhal", "--answers", str(path), "--judge-replies", str(saved), "--allow-missing"]
    proc = subprocess.run([*args, "--out", str(tmp_path / "partial.json")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    partial = json.loads((tmp_path / "partial.json").read_text())
    assert partial["metrics"]["average_score"] == pytest.approx((sum(scores) - scores[3]) / 95)
    saved.write_text(json.dumps([{"choices": [{"message": {"content": r}}]} for r in replies[:95]]))
    proc = subprocess.run([*args, "--out", str(tmp_path / "short.json")], capture_output=True, text=True)
    assert proc.returncode == 2 and f"error: {saved}: expected a JSON list of 96 judge replies, one per item of the answers file in item order (95 replies)" in proc.stderr


def test_unreachable_judge_fails_fast(shared_benchmarks, tmp_path):
    path = _responses(tmp_path, shared_benchmarks, ["x"] * 96)
    proc = mmhallu("score", "mmhal", "--answers", str(path), "--out", str(tmp_path / "r.json"), "--judge-base-url", "http://127.0.0.1:9/v1", "--judge-model", "m")
    assert proc.returncode == 2 and "cannot reach the OpenAI-compatible server at http://127.0.0.1:9/v1" in proc.stderr


def test_run_mmhal_end_to_end_with_local_judge(tiny_llava, shared_benchmarks, tmp_path):
    from PIL import Image

    items = json.loads((shared_benchmarks / "mmhal/response_template.json").read_text())[:8]
    images = tmp_path / "images"
    images.mkdir()
    for i, item in enumerate(items):
        Image.new("RGB", (32, 32), (i * 30, 100, 50)).save(images / f"{item['image_id']}.jpg")
    data = tmp_path / "template.json"
    data.write_text(json.dumps(items))
    out = tmp_path / "run"
    with JudgeServer() as server:
        server.reply_fn = lambda prompt: "Fine. Rating: 4" if "fire hydrant" in prompt.lower() else "Wrong. Rating: 1"
        args = [*CLI, "run", "--model", str(tiny_llava), "--tasks", "mmhal", "--out", str(out), "--no-progress", "--max-new-tokens", "8",
                "--task-arg", f"mmhal.data={data}", "--task-arg", f"mmhal.images={images}", "--judge-base-url", server.url, "--judge-model", "judge-y"]
        proc = subprocess.run(args, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        calls = server.total
        assert subprocess.run(args, capture_output=True, text=True).returncode == 0
        assert server.total == calls, "a rerun of the same command asks the judge nothing"
    result = json.loads((out / "mmhal/result.json").read_text())
    assert result["n"] == 8 and result["metrics"]["n"] == 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"]["mmhal"]["judge"]["model"] == "judge-y" and manifest["tasks"]["mmhal"]["prompt_version"]
    filled = json.loads((out / "mmhal/response.json").read_text())
    assert len(filled) == 8 and all(isinstance(f["model_answer"], str) for f in filled) and filled[0]["question"] == items[0]["question"]


def test_local_model_as_judge(tiny_llava, shared_benchmarks, tmp_path):
    """A model loaded in-process can be the judge; its (random) replies go through the same rating rule."""
    items = json.loads((shared_benchmarks / "mmhal/responses_llava_7b.json").read_text())
    path = tmp_path / "response.json"
    path.write_text(json.dumps(items))
    out = tmp_path / "r.json"
    # the official prompt is ≈ 4,100 tokens with the tiny model's small vocabulary, past its 1,024 positions: every
    # judge call fails, counted, and the command ends as a run that scored nothing does
    args = [*CLI, "score", "mmhal", "--answers", str(path), "--out", str(out), "--judge-backend", "transformers"]
    proc = subprocess.run([*args, "--judge-model", str(tiny_llava)], capture_output=True, text=True)
    assert proc.returncode == 1 and "error: task mmhal: all 96 samples failed (judge_error 96); first: 0: judge_error: invalid_request: the prompt (" in proc.stderr
    assert json.loads(out.read_text())["errors"]["judge_error"] == 96
    judge = tmp_path / "judge"  # the same model with room for the prompt
    shutil.copytree(tiny_llava, judge)
    config = json.loads((judge / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 8192
    (judge / "config.json").write_text(json.dumps(config))
    proc = subprocess.run([*args, "--judge-model", str(judge)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["judge"]["kind"] == "local" and result["n_scored"] == 96
    assert 0 <= result["metrics"]["unparsed_ratings"] <= 96 and result["metrics"]["average_score"] is not None
