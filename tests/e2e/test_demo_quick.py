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
    assert [s for s in loop["stages"]] == ["base", "pairs", "train", "tuned", "compare"]
    assert all(s["status"] == "done" for s in loop["stages"].values())
    compare = json.loads((out / "loop/compare/compare.json").read_text())
    assert set(compare["tasks"]) == {"pope", "mme", "finer_comprecap", "chair"}
    meta = json.loads((out / "loop/pairs.meta.json").read_text())
    assert meta["n_pairs"] > 0 and set(meta["mix"]) == {"obj", "attr", "rel", "wh"}
    assert "compare report:" in proc.stdout
    # rerun: every stage is up to date
    proc = subprocess.run([sys.executable, "-m", "mmhallu_eval.cli", "demo", "--quick", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("up to date, skipped") == 4
