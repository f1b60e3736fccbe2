"""A new task and a new pair strategy each touch one folder: a toy task found with --include-path gets `tasks`,
typed `--task-arg`s, a generated `score` command with its own flags, `run`, result intervals and `compare` from its
declaration alone; a toy strategy found through the `mmhallu_eval.strategies` entry-point group gets its flag in
`pairs build`."""
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]

TOY_TASK = textwrap.dedent('''
    """A toy task: say a number back."""
    from dataclasses import dataclass

    from mmhallu_eval import Measure, Metric, Parser, Sample, TaskOptions, TaskSpec, count, opt, ratio, task

    @dataclass
    class ToyOptions(TaskOptions):
        n: int = opt(6, "how many questions")
        word: str = opt("say", "the verb of the prompt")

    def load(options: ToyOptions):
        return [Sample(id=str(i), prompt=f"{options.word} {i}", target=str(i), group="even" if i % 2 == 0 else "odd") for i in range(options.n)]

    MEASURE = Measure(stats=("right", "n"), unit_stats=lambda rs: (bool(rs[0]["correct"]), 1),
                      metrics=(Metric("accuracy", ratio("right", "n"), True, ci=True), Metric("n", count("n"))), accuracy_metric="accuracy")

    @task("toy_echo")
    def toy_echo():
        return TaskSpec(name="toy_echo", version="1", description="say a number back", data_source="generated", loader=load,
                        score_sample=lambda s, text, p: {"parsed": p(text), "correct": p(text) == s.target}, measure=MEASURE,
                        parsers={"first-word": Parser("first-word", "1", lambda t: (t.split() or [""])[0])}, default_parser="first-word",
                        options=ToyOptions)
''')

TOY_STRATEGY = textwrap.dedent('''
    """A toy pair strategy: "Is it a WORD?" No ≻ Yes, once per image."""
    from dataclasses import dataclass
    from pathlib import Path

    from mmhallu_eval.options import opt
    from mmhallu_eval.train.pairs import make_pair
    from mmhallu_eval.train.strategy import Strategy

    @dataclass
    class ToyOptions:
        toy_word: str = opt("unicorn", "the absent thing to ask about")

    def build(ctx, o):
        return [make_pair(f"toy-{g['image_id']}", str(Path(ctx.images) / g["file_name"]), f"Is it a {o.toy_word}?", "No", "Yes", strategy="toy_upper")
                for g in ctx.graphs]

    STRATEGY = Strategy(name="toy_upper", description="asks about an absent thing", options=ToyOptions, build=build)
''')


@pytest.fixture()
def toy_tasks(tmp_path: Path) -> Path:
    (tmp_path / "plugins" / "toy").mkdir(parents=True)
    (tmp_path / "plugins" / "toy" / "task.py").write_text(TOY_TASK)
    return tmp_path / "plugins"


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def test_a_toy_task_gets_every_command_from_its_declaration(toy_tasks, tmp_path):
    listed = _cli("tasks", "--include-path", str(toy_tasks))
    assert listed.returncode == 0 and "toy_echo" in listed.stdout
    options = _cli("tasks", "toy_echo", "--include-path", str(toy_tasks))
    assert "n (integer) [default: 6]: how many questions" in options.stdout

    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": str(i), "text": f"{i if i % 3 else 9} ok"}) + "\n" for i in range(4)))
    out = tmp_path / "toy" / "result.json"
    scored = _cli("score", "toy_echo", "--include-path", str(toy_tasks), "--answers", str(answers), "--out", str(out), "--n", "4")
    assert scored.returncode == 0, scored.stderr
    result = json.loads(out.read_text())
    assert result["metrics"] == {"accuracy": 0.5, "n": 4} and set(result["groups"]) == {"even", "odd"}
    assert "accuracy" in result["ci"] and result["groups"]["even"]["accuracy"] == 0.5

    bad = _cli("score", "toy_echo", "--include-path", str(toy_tasks), "--answers", str(answers), "--out", str(out), "--n", "four")
    assert bad.returncode == 2 and "--task-arg toy_echo.n='four': expected a whole number" in bad.stderr
    typo = _cli("score", "toy_echo", "--include-path", str(toy_tasks), "--answers", str(answers), "--out", str(out), "--task-arg", "toy_echo.nn=3")
    assert typo.returncode == 2 and "no option 'nn'. Did you mean: n?" in typo.stderr


@pytest.mark.slow
def test_a_plugin_that_fails_to_import_or_takes_a_builtin_name_is_one_error_line(tmp_path):
    broken = tmp_path / "broken" / "oops"
    broken.mkdir(parents=True)
    (broken / "task.py").write_text("def x(:\n")
    proc = _cli("tasks", "--include-path", str(broken.parent))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: task file {broken / 'task.py'} failed to import: invalid syntax (task.py, line 1)"
    clash = tmp_path / "clash" / "mine"
    clash.mkdir(parents=True)
    (clash / "task.py").write_text("from mmhallu_eval import task\n\n\n@task('pope')\ndef mine():\n    raise AssertionError\n")
    proc = _cli("score", "pope", "--help", "--include-path", str(clash.parent))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"task 'pope' is registered twice: by {(clash / 'task.py').resolve()} and by mmhallu_tasks.pope.task" in proc.stderr
    assert proc.stderr.rstrip().endswith("give one of them another name")


def test_a_toy_task_runs_and_compares(toy_tasks, tiny_llava, tmp_path):
    args = ["run", "--model", str(tiny_llava), "--tasks", "toy_echo", "--include-path", str(toy_tasks), "--no-progress", "--device", "cpu",
            "--max-new-tokens", "3"]
    for name in ("a", "b"):
        proc = _cli(*args, "--out", str(tmp_path / name), "--task-arg", "toy_echo.n=8")
        assert proc.returncode == 0, proc.stderr
    proc = _cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--include-path", str(toy_tasks), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 0, proc.stderr
    compared = json.loads((tmp_path / "cmp/compare.json").read_text())["tasks"]["toy_echo"]["metrics"]["accuracy"]
    assert compared["test"].startswith("mcnemar") and compared["delta"] == 0
    unfound = _cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp2"))  # the plugin's folder not named
    assert unfound.returncode == 2 and "unknown task 'toy_echo'" in unfound.stderr and "--include-path FOLDER" in unfound.stderr
    wrong = _cli(*args, "--out", str(tmp_path / "c"), "--task-arg", "tox_echo.n=2")
    assert wrong.returncode == 2 and "--task-arg names task 'tox_echo', which is not in --tasks (toy_echo). Did you mean 'toy_echo'?" in wrong.stderr


@pytest.mark.parametrize("returned, message", [
    (None, "its loader returned NoneType, not a list of Sample"),
    ([{"id": "1"}], "item 0 of its loader ({'id': '1'}) is a dict, not a Sample"),
    ("sample:1", "its loader returned str, not a list of Sample"),
    ("id:7", "item 1 of its loader (7) has an id that is not text"),
    ("prompt:None", "item 1 of its loader ('b') has a prompt that is not text"),
    ("images:a.png", "item 1 of its loader ('b') has images that are not a list of file paths or PIL images"),
    ("group:3", "item 1 of its loader ('b') has a group that is neither text nor None"),
    ("metadata:[]", "item 1 of its loader ('b') has metadata that is not a dict"),
    ("id:a", "sample id 'a' occurs more than once in the data"),
])
def test_what_a_task_loader_returns_is_checked(returned, message):
    """A loader that breaks the Sample contract is named with the item (a run of it used to crash, or to write
    records that its own report refused: an id that is a number, a prompt that is not text)."""
    import ast
    import dataclasses

    from mmhallu_eval import Sample, TaskError, get_task

    good = [Sample(id="a", prompt="say a"), Sample(id="b", prompt="say b")]
    if isinstance(returned, str) and ":" in returned and not returned.startswith("sample"):
        key, value = returned.split(":", 1)
        try:
            value = ast.literal_eval(value)
        except ValueError:
            pass
        returned = [good[0], dataclasses.replace(good[1], **{key: value})]
    spec = dataclasses.replace(get_task("pope"), loader=lambda options: returned)
    with pytest.raises(TaskError, match="^task 'pope': " + re.escape(message)):
        spec.load({})


@pytest.mark.parametrize("score, message", [
    (None, "the score of sample 'a' is a NoneType, not a dict of record fields"),
    ({"parsed": "yes", "correct": "yes"}, "the score of sample 'a' has \"correct\" 'yes'; it must be True, False or None"),
    ({"parsed": "yes", "correct": True, "id": 5, "response": ""}, "the score of sample 'a' sets id, response, which the record keeps"),
    ({"correct": None, "error": 3}, "the score of sample 'a' has \"error\" 3; it must be text or None"),
])
def test_what_a_task_scorer_returns_is_checked(score, message):
    """A scorer that breaks the record contract is named with the sample (a text "correct" counted as correct and
    was written into records the run's own report refused; an "id" in the score replaced the sample's)."""
    import dataclasses

    from mmhallu_eval import Sample, TaskError, get_task
    from mmhallu_eval.scoring import make_records
    from mmhallu_eval.types import Response

    spec = dataclasses.replace(get_task("pope"), score_sample=lambda sample, text, parser: score)
    samples = [Sample(id="a", prompt="p", target="yes")]
    with pytest.raises(TaskError, match="^task 'pope': " + re.escape(message)):
        make_records(spec, spec.parser(None), samples, {"a": Response(id="a", text="Yes")})
    batch = dataclasses.replace(spec, score_batch=lambda samples, texts, parser, options: [])
    with pytest.raises(TaskError, match="^task 'pope': its scorer returned 0 scores for 1 answers"):
        make_records(batch, spec.parser(None), samples, {"a": Response(id="a", text="Yes")})


def test_a_record_that_is_not_json_is_named(tmp_path):
    from mmhallu_eval import TaskError
    from mmhallu_eval.files import JsonlWriter

    with JsonlWriter(tmp_path / "samples.jsonl") as out:
        out.write({"id": "a", "parsed": "yes"})
        with pytest.raises(TaskError, match=r"samples.jsonl: the row of 'b' cannot be written as JSON \(not JSON serialisable: set\)"):
            out.write({"id": "b", "parsed": {1, 2}})
    assert not any(tmp_path.iterdir())  # nothing committed, no temp file left


def test_a_task_declaration_is_checked_when_the_task_is_made():
    """A default parser, an accuracy metric or a statistic the declaration does not have is named when the task is
    made (a metric reading an undeclared statistic was a KeyError after generation), and unit statistics that are
    not one number per statistic are named with the unit (a reshape error when the result was built)."""
    import dataclasses

    from mmhallu_eval import Measure, Metric, TaskError, TaskOptions, get_task, opt, ratio
    from mmhallu_eval.measure import UnitAccumulator

    pope = get_task("pope")
    with pytest.raises(TaskError, match="^task 'pope': default_parser 'pope-offical' is not one of its parsers"):
        dataclasses.replace(pope, default_parser="pope-offical")
    with pytest.raises(TaskError, match="^task 'pope': accuracy_metric 'acc' is not one of its metrics"):
        dataclasses.replace(pope, measure=dataclasses.replace(pope.measure, accuracy_metric="acc"))
    measure = Measure(stats=("right", "n"), unit_stats=lambda rs: (1, 1), metrics=(Metric("accuracy", ratio("right", "m")),))
    with pytest.raises(TaskError, match=r"^task 'pope': metric 'accuracy' reads the statistic 'm', which its Measure's stats \(right, n\) do not declare"):
        dataclasses.replace(pope, measure=measure)
    @dataclasses.dataclass
    class ListOptions(TaskOptions):
        weights: list = opt(None, "a list")

    with pytest.raises(TaskError, match="^task 'pope': option 'weights' is declared as list; an option is text, integer, number"):
        dataclasses.replace(pope, options=ListOptions)

    @dataclasses.dataclass
    class PathOptions(TaskOptions):
        folder: Path | None = opt(None, "a folder")

    assert dataclasses.replace(pope, options=PathOptions).parse_options({"folder": "a/b"}).folder == Path("a/b")  # a Path, not the text
    for returned in ((1, 1, 1), ("a", 1), None):
        units = UnitAccumulator(dataclasses.replace(measure, unit_stats=lambda rs, r=returned: r or ()))
        with pytest.raises(TaskError, match=r"^sample 'x': the task's unit_stats returned .*; it must return 2 numbers, one per statistic \(right, n\)"):
            units.add({"id": "x", "group": "g", "correct": True})


@pytest.mark.parametrize("name", ["ec ho<b>", "my.task", "a=b", "", "-x", "../up"])
def test_a_task_name_is_a_folder_name_and_a_task_arg_prefix(name):
    """A task's name names its folder in a run and the TASK of --task-arg TASK.KEY=VALUE: spaces, markup, "." and
    "=" are refused when the task registers."""
    from mmhallu_eval import TaskError
    from mmhallu_eval.registry import task

    with pytest.raises(TaskError, match="use letters, digits, _ and -"):
        task(name)(lambda: None)


def test_a_task_without_samples_is_refused_before_the_model_loads(toy_tasks, tmp_path):
    proc = _cli("run", "--model", str(tmp_path / "no-model"), "--tasks", "toy_echo", "--include-path", str(toy_tasks), "--task-arg", "toy_echo.n=0",
                "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "error: task 'toy_echo': its data has no samples (an empty file or folder?)" in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_toy_strategy_from_an_entry_point_gets_its_flag(world, tmp_path):
    site = tmp_path / "site"
    (site / "toy_strategy-0.1.dist-info").mkdir(parents=True)
    (site / "toy_strategy.py").write_text(TOY_STRATEGY)
    (site / "toy_strategy-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-strategy\nVersion: 0.1\n")
    (site / "toy_strategy-0.1.dist-info" / "entry_points.txt").write_text("[mmhallu_eval.strategies]\ntoy_upper = toy_strategy\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    helped = _cli("pairs", "build", "--help", env=env)
    assert "--toy-word" in helped.stdout
    out = tmp_path / "pairs.jsonl"
    built = _cli("pairs", "build", "--strategy", "toy_upper,finer", "--toy-word", "dragon", "--annotations", str(world / "scene_graph_train.json"),
                 "--images", str(world / "images"), "--out", str(out), env=env)
    assert built.returncode == 0, built.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    toy = [r for r in rows if r["strategy"] == "toy_upper"]
    assert len(toy) == 24 and toy[0]["prompt"][0]["content"][-1]["text"] == "Is it a dragon?"
    assert any(r["strategy"] == "finer" for r in rows)


def test_the_commands_list_gives_each_command_one_paragraph():
    """A docstring wrapped over two lines is one paragraph in `mmhallu --help`, not a line break mid-sentence."""
    from typer.testing import CliRunner

    from mmhallu_eval.cli import build_app

    listing = CliRunner().invoke(build_app([]), ["--help"], env={"COLUMNS": "80"}).output
    assert "shapes world → demo VLM → POPE/CHAIR/MME/FINER → DPO pairs → DPO (LoRA) → evaluate again" in " ".join(listing.split())
    commands = listing.split("Commands:")[1]
    assert "..." not in commands  # click cuts a line to 45 characters with "..." unless it is given whole
    score = CliRunner().invoke(build_app([]), ["score", "--help"], env={"COLUMNS": "80"}).output.split("Commands:")[1]
    assert "..." not in score and "RePOPE's parser and metrics" in " ".join(score.split())


def test_option_names_are_whole_in_an_80_column_terminal():
    """Every flag of `mmhallu run` is printed whole (Rich's boxed help cut `--gpu-memory-utilization` to
    `--gpu-memory-ut…` at 80 columns), and a boolean switch has no `--no-no-` twin."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from mmhallu_eval.cli import build_app

    app = build_app([])
    helped = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "80"}).output
    run = get_command(app).commands["run"]  # type: ignore[attr-defined]
    flags = [flag for param in run.params for flag in (*param.opts, *param.secondary_opts)]
    assert "--gpu-memory-utilization" in flags and all(flag in helped for flag in flags), helped
    assert "…" not in helped and "--no-no-" not in helped


def test_every_option_is_described_and_no_help_text_is_taken_for_terminal_markup():
    """The terminal's help renderer (rich) swallows `[word ...]` as a style tag, so a help text written `[default:
    0.8]` lost its default on screen; every command's help and option texts are checked for such brackets."""
    import re

    from typer.main import get_command

    from mmhallu_eval.cli import build_app

    tag = re.compile(r"(?<!\\)\[[a-z#/@][^\[]*?\]")
    found, undescribed, stack = [], [], [("mmhallu", get_command(build_app([])))]
    while stack:
        path, command = stack.pop()
        found += [f"{path} {p.name}" for p in command.params if tag.search(getattr(p, "help", None) or "")]
        found += [path] if tag.search(command.help or "") else []
        undescribed += [f"{path} {p.name}" for p in command.params if p.param_type_name == "option" and not (p.help or "").strip()]
        stack += [(f"{path} {name}", sub) for name, sub in getattr(command, "commands", {}).items()]
    assert not found, found
    assert not undescribed, undescribed  # and every option says what it is for
    from typer.testing import CliRunner

    shown = CliRunner().invoke(build_app([]), ["score", "amber", "--help"], env={"COLUMNS": "300"}).output
    assert "(default: 0.8)" in shown
