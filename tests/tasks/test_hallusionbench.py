"""HallusionBench: `mmhallu score hallusionbench` equals the official evaluation.py + utils.py (OpenAI replaced by saved
replies) whether verdicts come from raw replies, the official cache files or the judge client; bad input; end to end."""
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from judge_server import JudgeServer
from parity_cases import hallusion_case
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
PARITY = Path(__file__).parents[1] / "fixtures" / "parity"
OFFICIAL = json.loads((PARITY / "hallusionbench_official.json").read_text())["official_table"]


@pytest.fixture
def case(shared_benchmarks, tmp_path):
    data = shared_benchmarks / "hallusionbench" / "HallusionBench.json"
    result, replies = hallusion_case(data, tmp_path / "HallusionBench_result.json", tmp_path / "replies.json")
    return data, result, replies


def score(*args: str) -> subprocess.CompletedProcess:
    return mmhallu("score", "hallusionbench", *args)


def result_of(path: Path) -> dict:
    return json.loads(path.read_text())


def test_saved_replies_give_the_official_tables(case, tmp_path):
    data, answers, replies = case
    done = score("--data", str(data), "--judge-replies", str(replies), "--answers", str(answers), "--out", str(tmp_path / "out" / "r.json"))
    assert done.returncode == 0, done.stderr
    result = result_of(tmp_path / "out" / "r.json")
    assert result["metrics"]["official_table"] == OFFICIAL
    assert result["parser"] == "hallusionbench-official" and result["errors"]["total"] == 0
    lead = OFFICIAL["leaderboard"]
    assert round(100 * result["metrics"]["qacc"], 4) == lead["Acc per question pair (qAcc)"]
    assert set(result["groups"]) == {"VD", "VS"}
    assert result["metrics"]["unclear"] > 0  # replies the official rules read as unclear are counted


def test_official_cache_files_give_the_official_tables(case, tmp_path):
    data, answers, _ = case
    cache = tmp_path / "official"
    cache.mkdir()
    for name in ("hallusion_output_vd_model.json", "hallusion_output_vs_model.json"):
        (cache / name).write_bytes(gzip.decompress((PARITY / f"{name}.gz").read_bytes()))
    done = score("--data", str(data), "--official-cache", str(cache), "--answers", str(answers), "--out", str(tmp_path / "out" / "r.json"))
    assert done.returncode == 0, done.stderr
    assert result_of(tmp_path / "out" / "r.json")["metrics"]["official_table"] == OFFICIAL


def test_judge_client_sends_the_official_prompts_caches_and_counts_failures(case, tmp_path):
    data, answers, replies = case
    saved = json.loads(replies.read_text())

    def reply(prompt: str) -> str:
        if "Prediction answer:" in prompt:
            return saved[re.search(r"\(#([^)]*)\)", prompt.split("Prediction answer:", 1)[1]).group(1)]["correctness_reply"]
        return saved[re.search(r"\(#([^)]*)\)", prompt.split("response1:", 1)[1].split("\nresponse2: ")[0]).group(1)]["same_reply"]

    out = tmp_path / "out" / "r.json"
    args = ("--data", str(data), "--judge-model", "judge-x", "--answers", str(answers), "--out", str(out))
    with JudgeServer() as server:
        server.reply_fn = reply
        done = score("--judge-base-url", server.url, *args)
        assert done.returncode == 0, done.stderr
        first = server.total
        # the two kinds of prompt go out concurrently, in no fixed order: each is looked up by what it holds
        prompts = [body["messages"][0]["content"] for body in server.bodies]
        prompt = next(p for p in prompts if "Prediction answer:" in p)
        assert prompt.startswith("Imagine you are an intelligent teacher. Thoroughly read the question, reference answer")
        same = next(p for p in prompts if "response1:" in p)
        assert same.startswith("Imagine you are an intelligent teacher. Thoroughly read the two responses to two different questions.")
        assert "please generate \u201cincorrect\u201d." in prompt and prompt.endswith("\nOutput:")
        assert score("--judge-base-url", server.url, *args).returncode == 0
        assert server.total == first, "the same judge and prompts are answered from the cache"
    result = result_of(out)
    assert result["metrics"]["official_table"] == OFFICIAL
    assert result["judge"]["model"] == "judge-x"
    # the consistency prompt is asked only where its verdict is read: figures other than 0
    assert first == 1129 + sum(1 for r in json.loads(answers.read_text()) if r["figure_id"] != "0")

    rows = json.loads(answers.read_text())
    target = next(r for r in rows if r["figure_id"] == "0" and r["category"] == "VD")
    target["model_prediction"] += " FAIL500:99"
    answers.write_text(json.dumps(rows))
    with JudgeServer() as server:
        server.reply_fn = reply
        done = score("--judge-base-url", server.url, "--max-retries", "1", "--backoff", "0.01", *args[:-1], str(tmp_path / "out2" / "r.json"))
    assert done.returncode == 0, done.stderr
    failed = result_of(tmp_path / "out2" / "r.json")
    # the failing answer's own prompt and the consistency prompts that quote it fail: none of them is scored
    assert failed["errors"]["judge_error"] >= 2 and failed["n_scored"] == 1129 - failed["errors"]["total"]
    records = [json.loads(x) for x in (tmp_path / "out2" / "r.samples.jsonl").read_text().splitlines()]
    pair = "_".join(target[f] for f in ("category", "subcategory", "set_id"))
    assert all(r["error"] for r in records if r["id"].startswith(pair) and r["id"].endswith("_" + target["question_id"]))


def test_bad_rows_are_named(case, shared_benchmarks, tmp_path):
    data, answers, replies = case
    rows = json.loads(answers.read_text())
    del rows[3]["gt_answer"]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    done = score("--data", str(data), "--judge-replies", str(replies), "--answers", str(tmp_path / "a.json"), "--out", str(tmp_path / "o" / "r.json"))
    assert done.returncode == 2 and "row 3 (VS_chart_0_" in done.stderr and "missing field(s) gt_answer" in done.stderr
    sample = shared_benchmarks / "hallusionbench" / "HallusionBench_result_sample.json"
    done = score("--data", str(data), "--judge-replies", str(replies), "--answers", str(sample), "--out", str(tmp_path / "o" / "r.json"))
    assert done.returncode == 2 and "predates gt_answer" in done.stderr
    rows = json.loads(answers.read_text())
    rows[0]["set_id"] = "999"
    (tmp_path / "b.json").write_text(json.dumps(rows))
    done = score("--data", str(data), "--judge-replies", str(replies), "--answers", str(tmp_path / "b.json"), "--out", str(tmp_path / "o" / "r.json"))
    assert done.returncode == 2 and "answer ids not in the data (first: VS_chart_999_0_0)" in done.stderr


def test_judge_free_parser_is_named_and_needs_no_judge(case, tmp_path):
    data, answers, _ = case
    done = score("--data", str(data), "--parser", "yesno", "--answers", str(answers), "--out", str(tmp_path / "o" / "r.json"))
    assert done.returncode == 0, done.stderr
    result = result_of(tmp_path / "o" / "r.json")
    assert result["parser"] == "yesno" and result["judge"]["kind"] == "none"
    assert 0 <= result["metrics"]["aacc"] <= 1


def build_hallusion_world(images: Path, out: Path) -> Path:
    """HallusionBench's layout over generated figures: a VD set (original and edited figure) and a VS set (no figure,
    original, edited), two questions each."""
    rows = []
    for category, figures in (("VD", ("0", "1")), ("VS", ("0", "1", "2"))):
        for figure in figures:
            visual = "0" if category == "VS" and figure == "0" else "1" if figure in ("0", "1") else "2"
            if category == "VD" and figure == "1":
                visual = "2"
            name = None
            if visual != "0":
                name = f"./{category}/chart/0_{figure}.png"
                (images / category / "chart").mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (48, 48), (40 * int(figure), 120, 200)).save(images / name)
            for question in ("0", "1"):
                rows.append({"category": category, "subcategory": "chart", "visual_input": visual, "set_id": "0", "figure_id": figure,
                             "sample_note": "shapes", "question_id": question, "question": f"Is the bar {question} the tallest?",
                             "gt_answer_details": "It is.", "gt_answer": "1" if (int(figure) + int(question)) % 2 else "0", "filename": name})
    out.write_text(json.dumps(rows))
    return out


def test_run_end_to_end(tiny_llava, tmp_path):
    images = tmp_path / "figures"
    data = build_hallusion_world(images, tmp_path / "HallusionBench.json")
    out = tmp_path / "run"
    with JudgeServer() as server:
        server.reply_fn = lambda prompt: "correct" if "Prediction answer:" in prompt and len(prompt) % 2 else "same"
        done = mmhallu("run", "--model", str(tiny_llava), "--tasks", "hallusionbench", "--out", str(out),
                               "--task-arg", f"hallusionbench.data={data}", "--task-arg", f"hallusionbench.images={images}",
                               "--judge-base-url", server.url, "--judge-model", "judge-z", "--max-new-tokens", "8",
                               "--device", "cpu", "--dtype", "float32", "--no-progress")
    assert done.returncode == 0, done.stderr
    result = result_of(out / "hallusionbench" / "result.json")
    assert result["n"] == 10 and result["errors"]["total"] == 0
    assert set(result["metrics"]["official_table"]["per figure"]) == {"VD", "VS", "Overall"}
    exported = json.loads((out / "hallusionbench" / "HallusionBench_result.json").read_text())
    assert len(exported) == 10 and all("model_prediction" in r for r in exported)
    records = [json.loads(x) for x in (out / "hallusionbench" / "samples.jsonl").read_text().splitlines()]
    assert sum(1 for r in records if not r["images"]) == 2  # VS questions without a figure get no image
