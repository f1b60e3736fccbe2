"""The `mmhallu` command line. Heavy modules (torch, backends) are imported inside the commands that need them."""
from __future__ import annotations

from pathlib import Path
import json
from typing import Any, Optional

import typer

from .registry import get_task, include_path, task_names
from .task import TaskError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Measure hallucination in multimodal LLMs.")
score_app = typer.Typer(no_args_is_help=True, help="Score answers saved by any tool, without loading a model.")
world_app = typer.Typer(no_args_is_help=True, help="Build offline models and fixtures (tests, the embedded default).")
app.add_typer(score_app, name="score")
app.add_typer(world_app, name="world")


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _user_errors() -> tuple[type[BaseException], ...]:
    from .backends.base import BackendError
    from .rundir import RunDirError

    return (TaskError, BackendError, RunDirError)


def parse_task_args(items: list[str]) -> dict[str, dict[str, str]]:
    """`pope.data=PATH` → {"pope": {"data": "PATH"}}."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        task, dot, opt = key.partition(".")
        if not sep or not dot or not task or not opt:
            fail(f"--task-arg {item!r}: expected TASK.KEY=VALUE, e.g. pope.data=coco_pope_random.json")
        out.setdefault(task, {})[opt] = value
    return out


def parse_parsers(value: str | None, tasks: list[str]) -> dict[str, str]:
    """`strict` (for every task) or `pope=strict,mme=mme-official`."""
    if not value:
        return {}
    if "=" not in value:
        return {t: value for t in tasks}
    out = {}
    for part in value.split(","):
        task, _, name = part.partition("=")
        out[task.strip()] = name.strip()
    return out


@app.command("tasks")
def tasks_cmd(include: list[Path] = typer.Option([], "--include-path", help="Folder with user task plugins.")) -> None:
    """List the registered tasks with version, default parser and data source."""
    try:
        for path in include:
            include_path(path)
        rows = [get_task(name) for name in task_names()]
    except TaskError as exc:
        fail(str(exc))
    width = max((len(s.name) for s in rows), default=4)
    typer.echo(f"{'task'.ljust(width)}  version  parser (others)                      data source")
    for s in rows:
        others = ", ".join(p for p in sorted(s.parsers) if p != s.default_parser)
        parser_col = f"{s.default_parser} ({others})" if others else s.default_parser
        typer.echo(f"{s.name.ljust(width)}  {s.version.ljust(7)}  {parser_col.ljust(35)}  {s.data_source}")


@app.command("run")
def run_cmd(
    model: str = typer.Option(..., help="Local model folder or hub id."),
    tasks: str = typer.Option(..., help="Comma-separated task names, e.g. pope,chair."),
    out: Path = typer.Option(..., help="Run folder to write (manifest, <task>/result.json, cache)."),
    backend: str = typer.Option("transformers", help="Inference backend."),
    limit: Optional[int] = typer.Option(None, help="Evaluate only the first N samples of each task."),
    batch_size: Optional[int] = typer.Option(None, help="Requests per generate call (default: the backend's)."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Override the tasks' max_new_tokens."),
    parser: Optional[str] = typer.Option(None, help="Parser for all tasks, or TASK=PARSER,..."),
    task_arg: list[str] = typer.Option([], "--task-arg", help="Task option TASK.KEY=VALUE (repeatable)."),
    include: list[Path] = typer.Option([], "--include-path", help="Folder with user task plugins."),
    dtype: str = typer.Option("auto", help="auto (bf16 on CUDA, else fp32), float32, bfloat16, float16."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    revision: Optional[str] = typer.Option(None, help="Model revision for hub ids."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter folder to evaluate on top of --model."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model for judged tasks (mmhal), e.g. gpt-4o."),
    judge_base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL of the judge (e.g. a local vllm serve)."),
    judge_api_key_env: Optional[str] = typer.Option(None, help="Environment variable with the judge's API key (default OPENAI_API_KEY)."),
    judge_backend: Optional[str] = typer.Option(None, help="openai (default) or a local backend name, e.g. transformers."),
    resume: bool = typer.Option(False, help="Continue in a folder that holds a different run, reusing its cache."),
    overwrite: bool = typer.Option(False, help="Replace whatever the output folder holds."),
    no_progress: bool = typer.Option(False, help="Hide progress bars."),
) -> None:
    """Evaluate a model on one or more tasks; re-running the same command resumes from the cache."""
    from .runner import RunConfig, run

    task_list = [t.strip() for t in tasks.split(",") if t.strip()]
    task_args = parse_task_args(task_arg)
    judge = {"judge_model": judge_model, "judge_base_url": judge_base_url, "judge_api_key_env": judge_api_key_env, "judge_backend": judge_backend}
    for name in task_list:
        if name == "mmhal":  # the judged task; its judge replies are cached in the run folder
            task_args.setdefault(name, {}).update({k: v for k, v in judge.items() if v})
            task_args[name].setdefault("judge_cache", str(out / "judge_cache.sqlite"))
    config = RunConfig(
        model=model,
        tasks=task_list,
        out=out,
        backend=backend,
        limit=limit,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        parsers=parse_parsers(parser, task_list),
        task_args=task_args,
        backend_args={"dtype": dtype, "device": device, "revision": revision, "adapter": adapter},
        include_paths=[str(p) for p in include],
        resume=resume,
        overwrite=overwrite,
        show_progress=not no_progress,
    )
    try:
        results = run(config)
    except _user_errors() as exc:
        fail(str(exc))
    for name, result in results.items():
        typer.echo(f"{name}: {_headline(result)}")
    typer.echo(f"results in {out}")


def _headline(result: dict[str, Any]) -> str:
    keys = [k for k, v in result["metrics"].items() if isinstance(v, float)][:5]
    parts = [f"{k}={result['metrics'][k]:.4f}" for k in keys]
    if result["errors"].get("total"):
        parts.append(f"errors={result['errors']['total']}")
    return ", ".join(parts) + f" (n={result['n']}, parser={result['parser']})"


def _score_saved(
    task: str, options: dict[str, str], answers: Path, out: Path, parser: str | None, allow_missing: bool = False
) -> None:
    """Score a saved answers file and write result.json + <stem>.samples.jsonl beside it."""
    from .files import atomic_write_json, atomic_write_jsonl
    from .scoring import build_result, match_answers, score_texts

    extra: dict[str, Any] = {"answers_file": str(answers)}
    try:
        spec = get_task(task)
        chosen = spec.parser(parser)
        if spec.read_answers is not None:
            samples, texts, notes = spec.read_answers(answers, options)
            for note in notes:
                typer.secho(f"{answers}: {note}", fg=typer.colors.YELLOW, err=True)
        else:
            samples = spec.load(options)
            match = match_answers(samples, answers)
            texts = match.texts
            problems = match.problems()
            for p in problems:
                typer.secho(f"{answers}: {p}", fg=typer.colors.YELLOW, err=True)
            if problems and not allow_missing:
                fail("answers do not match the questions (see above); fix the file or pass --allow-missing to score what matches")
            extra.update(missing_answers=len(match.missing), unknown_answers=len(match.unknown), duplicate_answers=len(match.duplicates))
        records = score_texts(spec, chosen, samples, texts, options)
        result = build_result(spec, chosen, records, extra=extra)
    except _user_errors() as exc:
        fail(str(exc))
    atomic_write_json(out, result)
    atomic_write_jsonl(out.with_name(out.stem + ".samples.jsonl"), records)
    typer.echo(f"{task}: {_headline(result)}")
    typer.echo(f"wrote {out}")


@score_app.command("pope")
def score_pope(
    data: str = typer.Option(..., help="POPE question file(s)/folder, or merged JSONL with category."),
    answers: Path = typer.Option(..., help="JSONL answers with question_id and text (LLaVA format)."),
    out: Path = typer.Option(..., help="result.json to write (samples go to <out stem>.samples.jsonl)."),
    labels: Optional[str] = typer.Option(None, help="Folder of official question files giving labels to a merged JSONL."),
    parser: Optional[str] = typer.Option(None, help="pope-official (default), pope-opera or strict."),
    allow_missing: bool = typer.Option(False, help="Score the answers that match even if some are missing/unknown."),
) -> None:
    """Score saved POPE answers exactly as the official script does (or with another named parser)."""
    options = {"data": data, "prompt_suffix": ""}
    if labels:
        options["labels"] = labels
    _score_saved("pope", options, answers, out, parser, allow_missing)


@score_app.command("mme")
def score_mme(
    answers: Path = typer.Option(..., help="Folder of official 4-column files <subtask>.txt (image, question, gt, prediction)."),
    out: Path = typer.Option(..., help="result.json to write."),
    parser: Optional[str] = typer.Option(None, help="mme-official (default) or strict."),
) -> None:
    """Score MME results in the official format, as eval_tool/calculation.py does."""
    _score_saved("mme", {}, answers, out, parser)


@score_app.command("mmhal")
def score_mmhal(
    answers: Path = typer.Option(..., help="The filled MMHal-Bench template (response.json with model_answer)."),
    out: Path = typer.Option(..., help="result.json to write."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model, e.g. gpt-4o."),
    judge_base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL (default: OpenAI)."),
    judge_api_key_env: Optional[str] = typer.Option(None, help="Environment variable with the API key (default OPENAI_API_KEY)."),
    judge_backend: str = typer.Option("openai", help="openai or a local backend name (transformers)."),
    judge_replies: Optional[Path] = typer.Option(None, help="Saved judge replies (JSON list in item order): no judge calls."),
    judge_cache: Optional[Path] = typer.Option(None, help="Judge reply cache (default: judge_cache.sqlite beside --out)."),
    concurrency: int = typer.Option(8, help="Judge requests in flight."),
    max_retries: int = typer.Option(5, help="Retries per judge request on timeouts, 429 and 5xx."),
    backoff: float = typer.Option(1.0, help="First retry delay in seconds (doubled each retry)."),
    timeout: float = typer.Option(120.0, help="Seconds before a judge request times out."),
) -> None:
    """Rate MMHal-Bench answers with an LLM judge using the official prompt and rating rule."""
    if not judge_replies and not judge_model:
        fail("give --judge-model (and --judge-base-url for a local server) or --judge-replies FILE")
    options = {
        "judge_backend": judge_backend, "judge_concurrency": str(concurrency), "judge_max_retries": str(max_retries),
        "judge_backoff": str(backoff), "judge_timeout": str(timeout), "judge_cache": str(judge_cache or out.parent / "judge_cache.sqlite"),
    }
    options.update({k: str(v) for k, v in (("judge_model", judge_model), ("judge_base_url", judge_base_url), ("judge_api_key_env", judge_api_key_env), ("judge_replies", judge_replies)) if v})
    _score_saved("mmhal", options, answers, out, None)


@score_app.command("finer")
def score_finer(
    answers: Path = typer.Option(..., help="Rows with the dataset columns + text + setting (JSONL/CSV), or a folder of <setting> files."),
    out: Path = typer.Option(..., help="result.json to write."),
    dataset: str = typer.Option("comprecap", help="comprecap or docci (names the task in result.json)."),
    parser: Optional[str] = typer.Option(None, help="finer-official (default) or letter-strict."),
    settings: Optional[str] = typer.Option(None, help="Score only these settings (comma-separated)."),
) -> None:
    """Score FINER answers with the official first-letter rule and paired accuracy."""
    if dataset not in ("comprecap", "docci"):
        fail(f"--dataset {dataset!r}: use comprecap or docci")
    _score_saved(f"finer_{dataset}", {"settings": settings} if settings else {}, answers, out, parser)


@score_app.command("chair")
def score_chair(
    answers: Path = typer.Option(..., help="Captions as JSONL (or a JSON list) of {image_id, caption}."),
    out: Path = typer.Option(..., help="result.json to write."),
    gt: Optional[Path] = typer.Option(None, help="JSON image_id → list of COCO object names."),
    coco_annotations: Optional[Path] = typer.Option(None, help="Folder with instances_*.json and captions_*.json."),
    synonyms: Optional[Path] = typer.Option(None, help="CHAIR synonyms file (default: the original list)."),
    image_id_key: str = typer.Option("image_id"),
    caption_key: str = typer.Option("caption"),
) -> None:
    """Score saved captions with the CHAIR metrics of OPERA's chair.py (identical results, faster)."""
    if (gt is None) == (coco_annotations is None):
        fail("give exactly one of --gt GT.json or --coco-annotations DIR")
    options = {"image_id_key": image_id_key, "caption_key": caption_key}
    options.update({k: str(v) for k, v in (("gt", gt), ("coco_annotations", coco_annotations), ("synonyms", synonyms)) if v})
    _score_saved("chair", options, answers, out, None)


@app.command("setup")
def setup_cmd(what: str = typer.Argument(..., help="nltk: download the NLTK resources CHAIR needs.")) -> None:
    """Download optional resources (needs internet)."""
    if what != "nltk":
        fail(f"unknown setup target {what!r}; available: nltk")
    import nltk

    for name in ("punkt_tab", "averaged_perceptron_tagger_eng", "wordnet"):
        if not nltk.download(name, quiet=True):
            fail(f"could not download NLTK resource {name!r}; set NLTK_DATA to a folder that has it")
    typer.echo("NLTK resources ready")


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder written by `mmhallu run`."),
    out: Optional[Path] = typer.Option(None, help="HTML file (default RUN_DIR/report.html)."),
) -> None:
    """One self-contained HTML page: metrics with CIs, groups, errors, manifest, filterable samples."""
    from .report.pages import run_report

    try:
        path = run_report(run_dir, out)
    except TaskError as exc:
        fail(str(exc))
    typer.echo(f"wrote {path}")


@app.command("compare")
def compare_cmd(
    base: Path = typer.Argument(..., help="Run folder of the base model."),
    tuned: Path = typer.Argument(..., help="Run folder of the tuned model."),
    out: Optional[Path] = typer.Option(None, help="Folder for compare.html and compare.json (default: TUNED)."),
    intersect: bool = typer.Option(False, help="Compare only the samples both runs evaluated."),
) -> None:
    """Paired before/after statistics per task, metric and group, with the samples that flipped."""
    from .report.pages import compare_report

    try:
        html, js = compare_report(base, tuned, out, intersect=intersect)
    except TaskError as exc:
        fail(str(exc))
    data = json.loads(js.read_text())
    for task, t in data["tasks"].items():
        for metric, e in t["metrics"].items():
            if e["delta"] is not None:
                flag = " *" if e["significant"] else ""
                typer.echo(f"{task}/{metric}: {e['base']:.4f} → {e['tuned']:.4f} (Δ {e['delta']:+.4f}, p={e['p_value']:.3g}{flag})")
    typer.echo(f"wrote {html} and {js}")


@app.command("leaderboard")
def leaderboard_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders."),
    out: Path = typer.Option(Path("reports/leaderboard.html"), help="HTML file; .csv and .md are written beside it."),
) -> None:
    """A sortable HTML leaderboard of runs plus CSV and Markdown tables for papers."""
    from .report.pages import leaderboard

    try:
        paths = leaderboard(runs, out)
    except TaskError as exc:
        fail(str(exc))
    typer.echo("wrote " + ", ".join(map(str, paths)))


@world_app.command("tiny-model")
def tiny_model_cmd(
    out: Path = typer.Option(..., help="Folder to save the model and processor to."),
    arch: str = typer.Option("llava", help="llava or idefics3."),
    seed: int = typer.Option(0),
) -> None:
    """Build a tiny random-weight VLM with a locally trained tokenizer (offline, seconds)."""
    from .world.tiny_models import build_tiny_model

    try:
        build_tiny_model(arch, out, seed=seed)  # type: ignore[arg-type]
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"wrote {arch} tiny model to {out}")


@world_app.command("pope-fixture")
def pope_fixture_cmd(
    out: Path = typer.Option(..., help="Folder for images/ and *_pope_<split>.json."),
    n_images: int = typer.Option(8),
    seed: int = typer.Option(0),
) -> None:
    """Generate shape images and POPE question files for them."""
    from .world.fixtures import build_pope_fixture

    build_pope_fixture(out, n_images=n_images, seed=seed)
    typer.echo(f"wrote POPE fixture to {out}")


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("reports/demo"), help="Folder for the demo's assets and run."),
    limit: Optional[int] = typer.Option(None, help="Evaluate only the first N questions per task."),
) -> None:
    """The embedded default: a tiny model evaluated on a generated POPE fixture, no downloads."""
    from .runner import RunConfig, run
    from .world.fixtures import build_pope_fixture
    from .world.tiny_models import build_tiny_model

    assets = out / "assets"
    model_dir, data_dir = assets / "tiny-llava", assets / "pope-fixture"
    if not (model_dir / "config.json").exists():
        typer.echo(f"building tiny LLaVA model in {model_dir}")
        build_tiny_model("llava", model_dir)
    if not (data_dir / "shapes_pope_random.json").exists():
        typer.echo(f"generating POPE fixture in {data_dir}")
        build_pope_fixture(data_dir, n_images=24)
    config = RunConfig(
        model=str(model_dir),
        tasks=["pope"],
        out=out / "run",
        limit=limit,
        max_new_tokens=8,
        task_args={"pope": {"data": str(data_dir), "images": str(data_dir / "images")}},
        backend_args={"dtype": "float32", "device": "cpu"},
    )
    try:
        results = run(config)
    except _user_errors() as exc:
        fail(str(exc))
    typer.echo(f"pope: {_headline(results['pope'])}")
    typer.echo(f"results in {out / 'run'} (random weights: the numbers exercise the pipeline, not a model)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
