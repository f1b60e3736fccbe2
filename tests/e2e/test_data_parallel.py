"""`--data-parallel 2` on a local Ray instance with two transformers replicas of the tiny model: the same samples in
the same order, the same metrics and the same cache keys as a single-replica run."""
import json
import sqlite3
import subprocess
import sys

import pytest

from mmhallu_eval.backends.parallel import shard

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'mmhallu-eval[ray]')")
pytestmark = [pytest.mark.slow, pytest.mark.ray]
CLI = [sys.executable, "-m", "mmhallu_eval.cli"]


def test_shard_is_contiguous_and_complete():
    items = list(range(11))
    parts = shard(items, 3)
    assert [len(p) for p in parts] == [4, 4, 3] and sum(parts, []) == items
    assert shard([1], 4) == [[1], [], [], []]


def _keys(run):
    with sqlite3.connect(run / "cache.sqlite") as conn:
        return {row[0] for row in conn.execute("SELECT key FROM responses")}


def test_two_ray_replicas_equal_one(tiny_llava, pope_fixture, tmp_path):
    common = ["--model", str(tiny_llava), "--tasks", "pope", "--no-progress", "--max-new-tokens", "6", "--limit", "40", "--device", "cpu",
              "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}"]
    single, dp = tmp_path / "single", tmp_path / "dp"
    proc = subprocess.run([*CLI, "run", "--out", str(single), *common], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([*CLI, "run", "--out", str(dp), "--data-parallel", "2", *common], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (single / "pope/samples.jsonl").read_bytes() == (dp / "pope/samples.jsonl").read_bytes()
    a, b = (json.loads((run / "pope/result.json").read_text()) for run in (single, dp))
    assert a["metrics"] == b["metrics"]
    assert _keys(single) == _keys(dp) and len(_keys(dp)) > 0
    manifest = json.loads((dp / "manifest.json").read_text())
    assert manifest["model"]["data_parallel"] == 2 and manifest["model"]["backend"] == "transformers"
    # the replicas' run is the same run: rerunning it single-replica in the same folder resumes from its cache
    proc = subprocess.run([*CLI, "run", "--out", str(dp), *common], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((dp / "manifest.json").read_text())["tasks"]["pope"]["stats"]
    assert stats["generated"] == 0 and stats["cached"] > 0


def test_replica_start_failure_is_a_clear_error(pope_fixture, tmp_path):
    proc = subprocess.run([*CLI, "run", "--model", str(tmp_path / "nowhere"), "--tasks", "pope", "--out", str(tmp_path / "r"), "--data-parallel", "2",
                           "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "does not exist" in proc.stderr, proc.stderr
