import subprocess
import sys
import textwrap

import pytest

from mmhallu_eval import TaskError, get_task, include_path, task_names


def test_builtin_pope_registered_with_parsers():
    assert "pope" in task_names()
    spec = get_task("pope")
    assert spec.default_parser == "pope-official"
    assert {"pope-official", "pope-opera", "strict"} <= set(spec.parsers)
    assert spec.parser(None).name == "pope-official"
    with pytest.raises(TaskError, match="choose one of"):
        spec.parser("nope")


def test_unknown_task_did_you_mean():
    with pytest.raises(TaskError, match=r"unknown task 'poppe'\. Did you mean: pope, repope\?"):
        get_task("poppe")
    with pytest.raises(TaskError, match="Known tasks:"):
        get_task("zzzzzz")


USER_TASK = textwrap.dedent(
    '''
    from dataclasses import dataclass

    from mmhallu_eval import Measure, Metric, Parser, Sample, TaskOptions, TaskSpec, count, opt, ratio, task

    @dataclass
    class EchoOptions(TaskOptions):
        n: int = opt(3, "how many samples")

    def load(options):
        return [Sample(id=str(i), prompt=f"say {i}", target=str(i)) for i in range(options.n)]

    @task("echo_count")
    def echo_count():
        return TaskSpec(
            name="echo_count", version="2", description="user task", data_source="generated",
            loader=load,
            score_sample=lambda s, text, p: {"parsed": p(text), "correct": p(text) == s.target},
            measure=Measure(stats=("right", "n"), unit_stats=lambda rs: (bool(rs[0]["correct"]), 1),
                            metrics=(Metric("accuracy", ratio("right", "n"), True, ci=True), Metric("n", count("n")))),
            parsers={"identity": Parser("identity", "1", str.strip)}, default_parser="identity",
            options=EchoOptions,
        )
    '''
)


def test_include_path_registers_user_task(tmp_path):
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "task.py").write_text(USER_TASK)
    include_path(tmp_path)
    spec = get_task("echo_count")
    assert spec.version == "2" and len(spec.load({"n": "4"})) == 4
    proc = subprocess.run(
        [sys.executable, "-m", "mmhallu_eval.cli", "tasks", "--include-path", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "echo_count" in proc.stdout and "generated" in proc.stdout and "pope-official" in proc.stdout


def test_include_path_must_exist(tmp_path):
    with pytest.raises(TaskError, match="not a directory"):
        include_path(tmp_path / "missing")


def test_entry_point_is_declared():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="mmhallu_eval.tasks")}
    assert names.get("pope") == "mmhallu_tasks.pope.task"


def test_demo_runs_without_chair_when_nltk_data_cannot_be_had(monkeypatch):
    from mmhallu_eval import demo

    logs = []
    monkeypatch.setattr(demo, "missing_nltk_resources", lambda: ["wordnet"])
    monkeypatch.setattr(demo, "download_nltk_resources", lambda: False)
    assert demo._nltk_ready(logs.append) is False
    assert any("without CHAIR" in line and "mmhallu setup nltk" in line for line in logs)
    monkeypatch.setattr(demo, "missing_nltk_resources", lambda: [])
    assert demo._nltk_ready(logs.append) is True
