"""`mmhallu score TASK`: score answers saved by any tool, for every registered task (plugins too), without loading a
model. Each task's command is generated from its declaration: its options become flags (`--data`, `--gt`,
`--judge-model`, …), so `score pope|mme|finer|chair|mmhal` keep their flags and a plugin task needs no CLI code."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

import typer

from ..outputs import check_outputs, file_in
from ..reasoning import REASONING_MODES
from ..registry import TaskAlias, get_task, include_path, task_aliases, task_names
from .common import command, declared_options, fail, given, group, headline, option, parse_task_args, require_choice, say, user_errors

COMMON = {"answers", "out", "parser", "allow_missing", "reasoning", "task_arg", "include_path", "format", "peer_results"}


def _read(spec: Any, typed: Any, answers: Path, fmt: str) -> tuple[list[Any], Any, dict[str, Any], Any, str]:
    """(samples, AnswerMatch, the peer tool's parsed label per sample id, the peer's task or dataset read, the format read)."""
    from ..interop import FORMATS, detect_format, read_lmms_eval_log, read_vlmevalkit
    from ..scoring import match_answers

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt, why = detect_format(answers)
        say(f"{answers}: read as {fmt} ({why})")
    if fmt == "lmms-eval":
        samples, match, labels, lmms_task = read_lmms_eval_log(answers, lambda: spec.load(typed), spec.capabilities.lmms_eval, spec.name, typed)
        return samples, match, labels, lmms_task, f"lmms-eval:{lmms_task.name}"
    if fmt == "vlmevalkit":
        samples, match, labels, dataset = read_vlmevalkit(answers, lambda: spec.load(typed), spec.capabilities.vlmevalkit, spec.name)
        return samples, match, labels, dataset, f"vlmevalkit:{dataset.name}"
    if spec.read_answers is not None:
        if fmt == "llava":
            fail(f"{spec.name}'s answers are not LLaVA's JSON lines; use --format official (see the task's README)")
        samples, match = spec.read_answers(answers, typed)
        return samples, match, {}, None, "official"
    samples = spec.load(typed)
    return samples, match_answers(samples, answers), {}, None, fmt


def score_saved(task: str, options: dict[str, Any], answers: Path, out: Path, parser: str | None, allow_missing: bool = False,
                reasoning: str = "strip", fmt: str = "official", peer_results: Path | None = None) -> None:
    """Score a saved answers file and write result.json + <stem>.samples.jsonl beside it."""
    from ..files import atomic_write_json, atomic_write_jsonl
    from ..interop import peer_reported
    from ..scoring import ResultBuilder, all_failed, check_units, iter_scored_texts

    extra: dict[str, Any] = {"answers_file": str(answers)}
    samples_out = out.with_name(out.stem + ".samples.jsonl")
    try:
        inputs = [answers, *(v for v in options.values() if isinstance(v, (str, Path)) and str(v) and Path(v).exists())]
        check_outputs([out, samples_out], [*inputs, *([peer_results] if peer_results else [])])
        for given_path, flag in ((answers, "--answers"), (peer_results, "--peer-results")):
            if given_path is not None and not Path(given_path).exists():  # before the task's data is read or downloaded
                fail(f"{flag} {given_path}: not found")
        spec = get_task(task)
        chosen = spec.parser(parser)
        typed = spec.parse_options(options)
        samples, match, labels, source, extra["answers_format"] = _read(spec, typed, answers, fmt)
        if not match.texts and not match.invalid:
            fail(f"{answers}: no answers in the file")
        for note in match.notes:
            say(f"{answers}: {note}", typer.colors.YELLOW)
        problems = match.problems()
        for p in problems:
            say(f"{answers}: {p}", typer.colors.YELLOW)
        if problems and not allow_missing:
            fail("answers do not match the questions (see above); fix the file or pass --allow-missing to score what matches")
        extra.update(match.counts())
        peer = _peer(spec, peer_results, source) if peer_results is not None else None
        check_units(spec, samples)
        builder = ResultBuilder(spec)
        builder.unanswered(match.unanswered(samples))
        parsed: dict[str, Any] = {}

        def each(record: dict[str, Any]) -> None:
            builder.add(record)
            if labels and record.get("error") is None:
                parsed[record["id"]] = record.get("parsed")

        atomic_write_jsonl(samples_out, iter_scored_texts(spec, chosen, samples, match.texts, typed, reasoning), each=each)  # type: ignore[arg-type]
        result = builder.result(chosen, extra={**extra, "reasoning": reasoning})
        if peer is not None:
            numbers, metrics, same_tool = peer
            result["peer_reported"] = peer_reported(numbers, metrics, result, labels if same_tool else {}, parsed, match.texts)
    except user_errors() as exc:
        fail(str(exc))
    atomic_write_json(out, result)
    typer.echo(f"{task}: {headline(result)}")
    typer.echo(f"wrote {out}")
    failed = all_failed({task: result})
    if failed:  # as `run` ends: the result is written, but it holds no number
        say(f"error: {failed[0]}", typer.colors.RED)
        raise typer.Exit(1)


def _peer(spec: Any, path: Path, source: Any) -> tuple[Any, Any, bool]:
    """The peer's numbers (lmms-eval's results.json or VLMEvalKit's score file) for the task or dataset whose answers
    were read (else the one its file name or the task names), with their official counterparts, and whether the
    answers file came from that tool (then its per-item readings compare too). Read before anything is written."""
    from ..interop import LmmsEvalTask, dataset_of, is_vlmevalkit_scores, read_peer_results, read_vlmevalkit_scores
    from ..task import VlmevalkitDataset

    caps = spec.capabilities
    if is_vlmevalkit_scores(path):
        dataset = source if isinstance(source, VlmevalkitDataset) else dataset_of(path, caps.vlmevalkit)
        dataset = dataset or (caps.vlmevalkit[0] if len(caps.vlmevalkit) == 1 else None)
        if dataset is None:
            fail(f"--peer-results {path}: no VLMEvalKit dataset of {spec.name} named by the file (keep VLMEvalKit's name MODEL_DATASET_score.csv)")
        return read_vlmevalkit_scores(path, dataset.name), dataset.metrics, isinstance(source, VlmevalkitDataset)
    known = caps.lmms_eval
    lmms_task = source if isinstance(source, LmmsEvalTask) else (known[0] if known else None)
    if lmms_task is None:
        fail(f"--peer-results: no lmms-eval task maps to {spec.name}")
    return read_peer_results(path, lmms_task.name), lmms_task.peer_metrics(), isinstance(source, LmmsEvalTask)


def _common_params() -> list[inspect.Parameter]:
    return [
        option("answers", Path, ..., "The saved answers (the task's answers format; see its README)."),
        option("out", Path, ..., "result.json to write (samples go to <out stem>.samples.jsonl), or a folder (existing, or a name without an extension) to write result.json in."),
        option("parser", Optional[str], None, "A named parser of the task (default: the official one)."),
        option("allow_missing", bool, False, "Score the answers that match even if some are missing/unknown."),
        option("reasoning", str, "strip", "strip: parse the answer after </think>; keep: the raw text."),
        option("task_arg", list[str], [], "A task option TASK.KEY=VALUE (the same as its flag)."),
        option("include_path", list[str], [], "Folder with user task plugins."),
        option("format", str, "official", "Answers format: auto (detect and say which), official (the task's own; LLaVA's "
               "JSON lines for POPE-style tasks), llava, lmms-eval (a --log_samples file) or vlmevalkit (a predictions .xlsx/.tsv/.json); "
               "the questions come from --data."),
        option("peer_results", Optional[Path], None, "The peer tool's reported numbers (lmms-eval *_results.json, VLMEvalKit "
               "*_score.csv): written beside the official ones as peer_reported, with the items both tools parse differently."),
    ]


def _register(app: typer.Typer, name: str, spec_options: type, alias: TaskAlias | None = None) -> None:
    def callback(**values: Any) -> None:
        chosen = values.pop(alias.option, None) if alias else None
        if alias and chosen not in (None, *alias.tasks):
            fail(f"--{alias.option} {chosen!r}: use {' or '.join(alias.tasks)}")
        task = alias.tasks[chosen or alias.default] if alias else name
        require_choice("--reasoning", values["reasoning"], REASONING_MODES)
        options = {k: v for k, v in given(values).items() if k not in COMMON}
        for key, value in parse_task_args(values["task_arg"]).get(task, {}).items():
            if key in options:
                fail(f"{task}.{key} is given both as --{key.replace('_', '-')} and as --task-arg {task}.{key}; give it once")
            options[key] = value
        out = file_in(values["out"], "result.json")
        if get_task(task).capabilities.judged and "judge_cache" not in options:  # judge replies cached beside the result
            options["judge_cache"] = str(out.parent / "judge_cache.sqlite")
        score_saved(task, options, values["answers"], out, values["parser"], values["allow_missing"], values["reasoning"],
                    values["format"], values["peer_results"])

    params = _common_params() + declared_options(spec_options, skip=("max_new_tokens",))
    if alias is not None:
        params.append(option(alias.option, Optional[str], None, alias.help or f"default {alias.default}"))
    doc = (f"Score saved answers of {', '.join(alias.tasks.values())} (chosen by --{alias.option})." if alias
           else f"Score saved {name} answers: {get_task(name).description}.")
    command(app, name, callback, params, doc)


def score_app(include: list[str]) -> typer.Typer:
    """One `score` command per registered task (and task alias), plugins from `include` folders too."""
    app = group(no_args_is_help=True, help="Score answers saved by any tool, without loading a model: `mmhallu score TASK --answers F --out R`.")
    try:
        for path in include:
            include_path(path)
        aliases = task_aliases()
        for name in task_names():
            _register(app, name, get_task(name).options)
        for name, alias in aliases.items():
            if name not in task_names():
                _register(app, name, get_task(alias.tasks[alias.default]).options, alias)
    except user_errors() as exc:
        fail(str(exc))
    return app
