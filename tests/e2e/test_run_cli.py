"""`mmhallu run` end to end with the tiny LLaVA on generated POPE data, including resume after kill -9."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]


def run_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        *CLI, "run", "--model", str(model), "--tasks", "pope", "--out", str(out),
        "--task-arg", f"pope.data={data}", "--task-arg", f"pope.images={data / 'images'}",
        "--device", "cpu", "--dtype", "float32", "--no-progress", *extra,
    ]


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_run_writes_layout_and_rerun_generates_nothing(tiny_llava, pope_fixture, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(run_args(tiny_llava, pope_fixture, out, "--max-new-tokens", "6", "--limit", "40"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("manifest.json", "cache.sqlite", "pope/samples.jsonl", "pope/result.json"):
        assert (out / name).is_file(), name
    result = json.loads((out / "pope/result.json").read_text())
    assert result["schema_version"] == 1 and result["task"] == "pope" and result["parser"] == "pope-official"
    assert result["n"] == 40 and result["metrics"]["n"] == 40
    assert result["metrics"]["tp"] + result["metrics"]["fp"] + result["metrics"]["tn"] + result["metrics"]["fn"] == 40
    samples = [json.loads(l) for l in (out / "pope/samples.jsonl").read_text().splitlines()]
    assert len(samples) == 40 and {"id", "prompt", "response", "parsed", "correct", "metadata"} <= set(samples[0])
    m = manifest(out)
    assert m["tasks"]["pope"]["stats"]["generated"] + m["tasks"]["pope"]["stats"]["shared"] == 40
    assert m["model"]["architecture"] == "LlavaForConditionalGeneration"
    assert m["versions"]["transformers"] and m["tasks"]["pope"]["samples_hash"]
    first = (out / "pope/result.json").read_text()
    proc = subprocess.run(run_args(tiny_llava, pope_fixture, out, "--max-new-tokens", "6", "--limit", "40"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert manifest(out)["tasks"]["pope"]["stats"]["generated"] == 0
    assert manifest(out)["tasks"]["pope"]["stats"]["cached"] == 40
    assert (out / "pope/result.json").read_text() == first
    # resumed in another dtype: the answers cached in float32 are not taken for bfloat16 ones
    proc = subprocess.run(run_args(tiny_llava, pope_fixture, out, "--max-new-tokens", "6", "--limit", "40", "--dtype", "bfloat16", "--resume"),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    stats = manifest(out)["tasks"]["pope"]["stats"]
    assert stats["cached"] == 0 and stats["generated"] + stats["shared"] == 40 and manifest(out)["model"]["dtype"] == "bfloat16"


def _cached_rows(db: Path) -> int:
    """Rows the run has cached so far. Opened read-only: connecting plainly would create the file, and a run that finds
    a cache.sqlite before its manifest.json refuses the folder as not its own."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_mid_run_then_resume_matches_uninterrupted(tiny_llava, pope_fixture, tmp_path):
    args = ("--max-new-tokens", "48", "--batch-size", "1")
    # The same question on the same image appears in several splits: it is generated once.
    total = len({
        (q["image"], q["text"]) for f in pope_fixture.glob("*_pope_*.json") for q in map(json.loads, f.read_text().splitlines())
    })
    killed = tmp_path / "killed"
    proc = subprocess.Popen(run_args(tiny_llava, pope_fixture, killed, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done_at_kill = 0
    while time.time() < deadline:
        done_at_kill = _cached_rows(killed / "cache.sqlite")
        if done_at_kill >= 10:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = _cached_rows(killed / "cache.sqlite")
    assert 0 < done_at_kill < total, "the run should have been killed part-way"
    assert not (killed / "pope/result.json").exists()
    # Same command again: resumes without repeating the finished generations.
    resumed = subprocess.run(run_args(tiny_llava, pope_fixture, killed, *args), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    stats = manifest(killed)["tasks"]["pope"]["stats"]
    assert stats["generated"] == total - done_at_kill and _cached_rows(killed / "cache.sqlite") == total
    clean = tmp_path / "clean"
    ref = subprocess.run(run_args(tiny_llava, pope_fixture, clean, *args), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    assert (killed / "pope/result.json").read_text() == (clean / "pope/result.json").read_text()
    assert (killed / "pope/samples.jsonl").read_text() == (clean / "pope/samples.jsonl").read_text()


def test_ctrl_c_says_how_to_continue_and_keeps_finished_batches(tiny_llava, pope_fixture, tmp_path):
    out = tmp_path / "run"
    # started in the background by a script, the tests inherit SIGINT ignored, and so would the run: Ctrl-C as in a terminal
    proc = subprocess.Popen(run_args(tiny_llava, pope_fixture, out, "--max-new-tokens", "48", "--batch-size", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and _cached_rows(out / "cache.sqlite") < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (f"error: interrupted: the responses of finished batches are kept in {out / 'cache.sqlite'}; "
                                            "rerun the same command to continue from them")
    assert _cached_rows(out / "cache.sqlite") >= 3 and not (out / ".lock").exists()


def test_missing_image_is_recorded_and_run_goes_on(tiny_llava, pope_fixture, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(pope_fixture, data)
    victim, truncated = sorted((data / "images").iterdir())[:2]
    victim.unlink()
    truncated.write_bytes(truncated.read_bytes()[:100])  # there, but not a whole image
    out = tmp_path / "run"
    proc = subprocess.run(run_args(tiny_llava, data, out, "--max-new-tokens", "4"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "pope/result.json").read_text())
    showing = lambda image: sum(1 for f in data.glob("*_pope_*.json") for l in f.read_text().splitlines() if json.loads(l)["image"] == image.name)
    n_missing, n_unreadable = showing(victim), showing(truncated)
    assert n_missing > 0 and n_unreadable > 0
    n_images = len(list((data / "images").iterdir())) + 1
    assert f"[pope] 1 of {n_images} image files are missing (first: {victim})" in proc.stderr  # said before the model loads
    assert result["errors"]["total"] == n_missing + n_unreadable
    assert result["errors"]["missing_image"] == n_missing and result["errors"]["image_error"] == n_unreadable
    assert result["n_scored"] == result["n"] - n_missing - n_unreadable
    bad = [json.loads(l) for l in (out / "pope/samples.jsonl").read_text().splitlines() if json.loads(l)["error"]]
    assert len(bad) == n_missing + n_unreadable
    assert {b["error"] for b in bad} == {f"missing_image: {victim}", f"image_error: {truncated}: image file is truncated"}


def test_a_wrong_images_folder_is_refused_before_the_model_loads(pope_fixture, tmp_path):
    out = tmp_path / "run"
    args = run_args(tmp_path / "no-model", pope_fixture, out)  # the model is never looked at
    args[args.index(f"pope.images={pope_fixture / 'images'}")] = f"pope.images={tmp_path / 'elsewhere'}"
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "task 'pope': none of its" in proc.stderr and f"(first: {tmp_path / 'elsewhere'}" in proc.stderr
    assert "--task-arg pope.images=FOLDER" in proc.stderr and not out.exists()


def test_different_run_in_same_folder_is_refused(tiny_llava, pope_fixture, tmp_path):
    out = tmp_path / "run"
    base = run_args(tiny_llava, pope_fixture, out, "--max-new-tokens", "4", "--limit", "8")
    assert subprocess.run(base, capture_output=True, text=True).returncode == 0
    before = (out / "pope/result.json").read_text()
    other = run_args(tiny_llava, pope_fixture, out, "--max-new-tokens", "5", "--limit", "8")
    proc = subprocess.run(other, capture_output=True, text=True)
    assert proc.returncode == 2 and "already holds a different run" in proc.stderr and "--overwrite" in proc.stderr
    assert (out / "pope/result.json").read_text() == before
    proc = subprocess.run(other + ["--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert manifest(out)["config"]["max_new_tokens"] == 5 and len(manifest(out)["history"]) == 1
    proc = subprocess.run(base + ["--overwrite"], capture_output=True, text=True)
    assert proc.returncode == 0 and manifest(out)["history"] == []
    assert manifest(out)["tasks"]["pope"]["stats"]["cached"] == 0


@pytest.mark.parametrize(
    "change,message",
    [
        (("--tasks", "pop"), "unknown task 'pop'. Did you mean: pope, repope?"),
        (("--backend", "transformer"), "unknown backend 'transformer'. Did you mean: transformers?"),
        (("--parser", "pope-oficial"), "has no parser 'pope-oficial'"),
        (("--model", "/nonexistent/model"), "model path /nonexistent/model does not exist"),
        (("--parser", "pope=strict,pope=pope-opera"), "--parser 'pope=strict,pope=pope-opera': pope is given twice; give each task one parser"),
        (("--task-arg", "pope.prompt_suffix=x", "--task-arg", "pope.prompt_suffix=y"), "--task-arg pope.prompt_suffix is given twice ('x', then 'y')"),
    ],
)
def test_bad_input_fails_clearly(tiny_llava, pope_fixture, tmp_path, change, message):
    args = run_args(tiny_llava, pope_fixture, tmp_path / "run")
    if change[0] in args and len(change) == 2:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += list(change)
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_non_run_folder_is_refused(tiny_llava, pope_fixture, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = subprocess.run(run_args(tiny_llava, pope_fixture, out), capture_output=True, text=True)
    assert proc.returncode == 2 and "not a run folder" in proc.stderr
    assert (out / "notes.txt").read_text() == "keep me"


def test_task_arg_max_new_tokens_caps_one_task(tiny_llava, pope_fixture, tmp_path):
    """`--task-arg pope.max_new_tokens=3` wins over the run-wide cap and is recorded in the result's generation."""
    out = tmp_path / "run"
    proc = subprocess.run(run_args(tiny_llava, pope_fixture, out, "--max-new-tokens", "6", "--limit", "8", "--task-arg", "pope.max_new_tokens=3"),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "pope/result.json").read_text())["generation"]["max_new_tokens"] == 3
    proc = subprocess.run(run_args(tiny_llava, pope_fixture, tmp_path / "bad", "--task-arg", "pope.max_new_tokens=lots"), capture_output=True, text=True)
    assert proc.returncode == 2 and "--task-arg pope.max_new_tokens='lots': expected a whole number" in proc.stderr
