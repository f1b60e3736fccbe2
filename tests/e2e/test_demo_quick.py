"""`mmhallu demo --quick`: the whole loop (world → model → eval → pairs → DPO → eval → compare) on a tiny world."""
import json
import subprocess
import sys

import pytest

pytest.importorskip("trl", reason="the [train] extra (trl, peft) is not installed")


def test_quick_demo_runs_the_loop(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "mmhallu_eval.cli", "demo", "--quick", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loop = json.loads((out / "loop/loop.json").read_text())
    assert [s for s in loop["stages"]] == ["base", "own_captions", "pairs", "train", "tuned", "compare"]
    assert loop["stages"]["own_captions"]["outputs"]["n"] == 24 * 4  # the quick demo's 24 training images × 4 samples
    assert all(s["status"] == "done" for s in loop["stages"].values())
    compare = json.loads((out / "loop/compare/compare.json").read_text())
    assert set(compare["tasks"]) == {"pope", "mme", "finer_comprecap", "mmhal", "chair"}
    mmhal = [json.loads(p.read_text()) for p in sorted((out / "loop").rglob("mmhal/result.json"))]
    assert len(mmhal) == 2 and all(r["judge"]["kind"] == "scene-graph-oracle" and r["generation"]["max_new_tokens"] == 64 for r in mmhal)
    meta = json.loads((out / "loop/pairs.meta.json").read_text())
    assert meta["n_pairs"] > 0 and set(meta["mix"]) == {"obj", "attr", "rel", "wh"}
    assert meta["counts"].get("caption_swap/caption", 0) > 0 and meta["counts"].get("finer/obj", 0) > 0  # the demo's pair strategies
    mix = json.loads((out / "loop/mix.json").read_text())  # the demo's fixed mix, with the adaptive one for reference
    assert mix["mix"] == {"obj": 1.0, "attr": 0.2, "rel": 0.2, "wh": 0.2} and mix["mix_source"].startswith("fixed")
    assert json.loads((out / "loop/adapter/mmhallu_train.json").read_text())["loss_type"] == ["apo_zero", "sft"]
    assert "compare report:" in proc.stdout
    # the scorecard leads with where the demo model's hallucination is designed to show, and says where it cannot help
    card = proc.stdout.split("Scorecard", 1)[1].splitlines()
    assert card[2].startswith("pope / adversarial") and compare["scorecard"][0]["group"] == "adversarial"
    assert any(line.startswith("chair") for line in card[2:6]) and "FINER-style MCQ" in proc.stdout
    # --no-progress: no bars (weight loading, dataset mapping, generation, training) and no per-step DPO metrics
    assert "it/s" not in proc.stdout + proc.stderr and "'loss'" not in proc.stdout + proc.stderr
    # rerun: every stage is up to date; benchmarks recorded as built with other settings (as before the settings were
    # recorded) are built again, here to the same files, so no evaluation runs again
    assert json.loads((out / "assets/benchmarks/done.json").read_text())["finer"] == {"n_images": 500}
    (out / "assets/benchmarks/done.json").write_text('{"ok": true}')
    proc = subprocess.run([sys.executable, "-m", "mmhallu_eval.cli", "demo", "--quick", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "building the benchmarks again: this folder's were built with other settings" in proc.stdout
    assert proc.stdout.count("up to date, skipped") == 5
    # a benchmark file changed in place (its path the same): the evaluations run again from the response cache, the
    # pairs are built again (they leave the evaluation images out), not reported from the runs made on the old data
    n_before = json.loads((out / "loop/base/pope/result.json").read_text())["metrics"]["n"]
    for split in (out / "assets/benchmarks/pope").glob("*.json"):
        lines = split.read_text().splitlines(keepends=True)
        split.write_text("".join(lines[: len(lines) // 2]))
    proc = subprocess.run([sys.executable, "-m", "mmhallu_eval.cli", "demo", "--quick", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("base", "tuned"):
        assert f"[loop] {stage}: the data of pope changed since it ran; running it again" in proc.stdout
        assert json.loads((out / f"loop/{stage}/pope/result.json").read_text())["metrics"]["n"] == n_before // 2
    assert "[loop] pairs: the evaluation data whose images it leaves out changed since it ran; running it again" in proc.stdout
    assert (proc.stdout + proc.stderr).count(f"[pope] {n_before // 2} samples: 0 generated, {n_before // 2} cached") == 2
    assert "[loop] own_captions: up to date, skipped" in proc.stdout
    # a training image rewritten in place (same bytes, a new modification time): the stages that read the training
    # images run again — sampling, pairs, training — not skipped as up to date; the evaluation of the base model stays
    image = out / "assets/world/images" / json.loads((out / "assets/world/scene_graph_train.json").read_text())["images"][0]["file_name"]
    image.write_bytes(image.read_bytes())
    proc = subprocess.run([sys.executable, "-m", "mmhallu_eval.cli", "demo", "--quick", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[loop] base: up to date, skipped" in proc.stdout
    assert "[loop] own_captions: the training images changed since it ran; running it again" in proc.stdout
    for stage in ("pairs", "train"):
        assert f"[loop] {stage}: up to date, skipped" not in proc.stdout
    # the annotations rewritten with the same content in other bytes: sampling and pairs run again; training, whose
    # pairs came out the same and whose images did not change, is skipped
    annotations = out / "assets/world/scene_graph_train.json"
    annotations.write_text(json.dumps(json.loads(annotations.read_text()), indent=1))
    proc = subprocess.run([sys.executable, "-m", "mmhallu_eval.cli", "demo", "--quick", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[loop] own_captions: the training annotations changed since it ran; running it again" in proc.stdout
    assert "[loop] pairs: up to date, skipped" not in proc.stdout
    assert "[loop] train: up to date, skipped" in proc.stdout
