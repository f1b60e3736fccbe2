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
pairs_app = typer.Typer(no_args_is_help=True, help="Build DPO preference pairs.")
train_app = typer.Typer(no_args_is_help=True, help="Preference tuning with TRL.")
app.add_typer(score_app, name="score")
app.add_typer(pairs_app, name="pairs")
app.add_typer(train_app, name="train")
build_app = typer.Typer(no_args_is_help=True, help="Build benchmarks from COCO-format annotations or scene graphs.")
app.add_typer(world_app, name="world")
app.add_typer(build_app, name="build")


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
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run modelling/processor code shipped with the checkpoint (transformers, vllm); written into the manifest."),
    chat_template: Optional[Path] = typer.Option(None, help="Jinja chat template for a checkpoint that has none (or to replace its own); written into the manifest."),
    reasoning: str = typer.Option("strip", help="strip: parse the answer after </think> (reasoning models); keep: parse the raw text. The raw text is always kept."),
    base_url: Optional[str] = typer.Option(None, help="--backend openai: the server's base URL, e.g. http://localhost:8000/v1."),
    api_key_env: Optional[str] = typer.Option(None, help="--backend openai: environment variable holding the API key."),
    concurrency: int = typer.Option(8, help="--backend openai: requests in flight."),
    max_model_len: Optional[int] = typer.Option(None, help="--backend vllm: context length (longer requests are recorded as failed samples)."),
    gpu_memory_utilization: float = typer.Option(0.9, help="--backend vllm: share of GPU memory for weights and KV cache."),
    tensor_parallel_size: int = typer.Option(1, help="--backend vllm: GPUs per engine (tensor parallelism)."),
    max_images: int = typer.Option(1, help="--backend vllm: images per prompt (limit_mm_per_prompt)."),
    enforce_eager: bool = typer.Option(False, help="--backend vllm: skip graph compilation (faster start, slower decode)."),
    data_parallel: int = typer.Option(1, help="Replicas of the backend (Ray actors), e.g. one per GPU; results are identical to one replica."),
    ray_address: Optional[str] = typer.Option(None, help="Run the replicas on an existing Ray cluster, e.g. auto or ray://head:10001."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model for judged tasks (mmhal), e.g. gpt-4o."),
    judge_base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL of the judge (e.g. a local vllm serve)."),
    judge_api_key_env: Optional[str] = typer.Option(None, help="Environment variable with the judge's API key (default OPENAI_API_KEY)."),
    judge_backend: Optional[str] = typer.Option(None, help="openai (default), a local backend name (transformers), or scene-graph-oracle (with --task-arg mmhal.judge_scene_graph=FILE; synthetic data only)."),
    resume: bool = typer.Option(False, help="Continue in a folder that holds a different run, reusing its cache."),
    overwrite: bool = typer.Option(False, help="Replace whatever the output folder holds."),
    no_progress: bool = typer.Option(False, help="Hide progress bars."),
) -> None:
    """Evaluate a model on one or more tasks; re-running the same command resumes from the cache."""
    from .reasoning import REASONING_MODES
    from .runner import RunConfig, all_failed, run

    if reasoning not in REASONING_MODES:
        fail(f"--reasoning {reasoning!r}: choose {' or '.join(REASONING_MODES)}")
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
        backend_args=_backend_args(backend, dtype=dtype, device=device, revision=revision, adapter=adapter, base_url=base_url, api_key_env=api_key_env,
                                   trust_remote_code=trust_remote_code or None, chat_template=str(chat_template) if chat_template else None,
                                   concurrency=concurrency, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                                   tensor_parallel_size=tensor_parallel_size, max_images=max_images,
                                   enforce_eager=enforce_eager),
        data_parallel=data_parallel,
        ray_address=ray_address,
        include_paths=[str(p) for p in include],
        reasoning=reasoning,  # type: ignore[arg-type]
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
    failed = all_failed(results)
    if failed:
        for line in failed:
            typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


def _backend_args(backend: str, **kwargs: Any) -> dict[str, Any]:
    """Only the options that concern the chosen backend go into the run's identity."""
    keys = {
        "openai": ("base_url", "api_key_env", "concurrency", "revision"),
        "vllm": ("dtype", "revision", "adapter", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "max_images", "enforce_eager",
                 "trust_remote_code", "chat_template"),
    }.get(backend, ("dtype", "device", "revision", "adapter", "trust_remote_code", "chat_template"))
    return {k: v for k, v in kwargs.items() if k in keys and v is not None}


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
    judge_backend: str = typer.Option("openai", help="openai, a local backend name (transformers), or scene-graph-oracle (synthetic data with complete scene graphs only)."),
    judge_scene_graph: Optional[Path] = typer.Option(None, help="Scene-graph JSON for --judge-backend scene-graph-oracle."),
    judge_synonyms: Optional[Path] = typer.Option(None, help="CHAIR-style synonyms file for --judge-backend scene-graph-oracle."),
    judge_replies: Optional[Path] = typer.Option(None, help="Saved judge replies (JSON list in item order): no judge calls."),
    judge_cache: Optional[Path] = typer.Option(None, help="Judge reply cache (default: judge_cache.sqlite beside --out)."),
    concurrency: int = typer.Option(8, help="Judge requests in flight."),
    max_retries: int = typer.Option(5, help="Retries per judge request on timeouts, 429 and 5xx."),
    backoff: float = typer.Option(1.0, help="First retry delay in seconds (doubled each retry)."),
    timeout: float = typer.Option(120.0, help="Seconds before a judge request times out."),
) -> None:
    """Rate MMHal-Bench answers with an LLM judge using the official prompt and rating rule."""
    if judge_backend == "scene-graph-oracle" and not judge_scene_graph:
        fail("--judge-backend scene-graph-oracle needs --judge-scene-graph FILE")
    if not judge_replies and not judge_model and judge_backend != "scene-graph-oracle":
        fail("give --judge-model (and --judge-base-url for a local server), --judge-replies FILE, or --judge-backend scene-graph-oracle with --judge-scene-graph FILE")
    options = {
        "judge_backend": judge_backend, "judge_concurrency": str(concurrency), "judge_max_retries": str(max_retries),
        "judge_backoff": str(backoff), "judge_timeout": str(timeout), "judge_cache": str(judge_cache or out.parent / "judge_cache.sqlite"),
    }
    options.update({k: str(v) for k, v in (("judge_model", judge_model), ("judge_base_url", judge_base_url), ("judge_api_key_env", judge_api_key_env), ("judge_replies", judge_replies),
                                                  ("judge_scene_graph", judge_scene_graph), ("judge_synonyms", judge_synonyms)) if v})
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
    from .nltk_resources import download_nltk_resources, missing_nltk_resources

    if not download_nltk_resources() or missing_nltk_resources():
        fail(f"could not download NLTK resources {', '.join(missing_nltk_resources())}; set NLTK_DATA to a folder that has them")
    typer.echo("NLTK resources ready")


@app.command("vllm-layout")
def vllm_layout_cmd(
    model: Path = typer.Argument(..., help="A local model folder."),
    fix: bool = typer.Option(False, "--fix", help="Rename the weights in place (the safetensors files are rewritten)."),
) -> None:
    """Check a model folder for weight names vLLM cannot load (a LLaVA CLIP tower saved by transformers 5); --fix
    renames them to the published layout, which transformers loads too."""
    from .backends.vllm_layout import publish_clip_keys, unpublished_clip_keys

    if not (model / "config.json").is_file():
        fail(f"{model} is not a model folder (no config.json)")
    keys = unpublished_clip_keys(model)
    if not keys:
        typer.echo(f"{model}: nothing to rename; vLLM can map its weight names")
        return
    if not fix:
        typer.echo(f"{model}: {len(keys)} CLIP-tower weights vLLM cannot map (e.g. {keys[0]}); rerun with --fix to rename them in place")
        raise typer.Exit(1)
    typer.echo(f"{model}: renamed {publish_clip_keys(model)} weights to vision_tower.vision_model.*")


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


def _split(value: str) -> list[str]:
    """A comma-separated option as its non-empty items."""
    return [v.strip() for v in value.split(",") if v.strip()]


def _parse_mix(value: str | None) -> dict[str, float]:
    from .train.mix import DEFAULT_MIX

    if not value:
        return dict(DEFAULT_MIX)
    mix = {}
    for part in value.split(","):
        key, _, weight = part.partition("=")
        if key.strip() not in DEFAULT_MIX:
            fail(f"--mix {part!r}: pair types are {', '.join(DEFAULT_MIX)}")
        try:
            mix[key.strip()] = float(weight)
        except ValueError:
            fail(f"--mix {part!r}: expected TYPE=WEIGHT")
    return mix


@pairs_app.command("build")
def pairs_build(
    strategy: str = typer.Option(..., help="finer, povid, contrast, caption_swap or hadpo (comma-separated to combine)."),
    out: Path = typer.Option(..., help="pairs.jsonl to write (+ .meta.json with counts and the mix)."),
    annotations: Optional[Path] = typer.Option(None, help="Scene-graph JSON or COCO instances file (finer, povid, contrast, caption_swap)."),
    images: Optional[Path] = typer.Option(None, help="Folder the annotations' file names are relative to."),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="A run on training images (hadpo: chair and pope failures)."),
    reference_captions: Optional[Path] = typer.Option(None, help="COCO captions file: fallback chosen captions for hadpo."),
    mix: Optional[str] = typer.Option(None, help="Pair-type weights, e.g. obj=1,attr=2,rel=1,wh=0.5 (finer)."),
    mix_from_run: Optional[Path] = typer.Option(None, help="Set the mix from a base run's weakest slices."),
    neg_ratio: float = typer.Option(0.5, help="Share of one-slot negatives among finer pairs."),
    answer_style: str = typer.Option("sentence", help="finer, contrast: sentence (FINER-Tuning's answers) or short (the question + 'Answer the question using a single word or phrase.', one-word answers)."),
    both_polarities: bool = typer.Option(False, help="finer: a positive and a one-slot negative per chosen image and type (instead of --neg-ratio)."),
    small_quantile: float = typer.Option(0.25, help="contrast, caption_swap: objects whose box area (relative to the image) is within this smallest share of all objects count as small."),
    swap_kinds: str = typer.Option("swap,swap_partner", help="caption_swap: swap (a random object → the absent class co-occurring most with the image's objects, per template), swap_partner (each small object → its most co-occurring class when absent) and/or add_partner (that class named after the small object instead)."),
    caption_template: list[str] = typer.Option([], "--caption-template", help="caption_swap: a caption template with {objects} (objects with attributes) or {names} (class names) (repeatable; default 'The image shows {objects}.')."),
    partners: int = typer.Option(1, help="contrast: how many of a small object's most co-occurring classes to ask about when absent."),
    object_order: str = typer.Option("annotation", help="povid: name the objects in the annotations' order or in reading order (top to bottom by thirds, left to right; needs boxes)."),
    noise_model: Optional[str] = typer.Option(None, help="povid: also pair ground truth with this model's answers on noised images."),
    noise_strength: float = typer.Option(0.5, help="povid: forward-diffusion noise level 1-alpha_bar in (0, 1)."),
    injector_model: Optional[str] = typer.Option(None, help="povid: an LLM that injects hallucinations (OpenAI-compatible)."),
    injector_base_url: Optional[str] = typer.Option(None, help="povid: base URL of the injector LLM."),
    exclude_eval_tasks: Optional[str] = typer.Option(None, help="Drop pairs on images of these evaluation tasks, e.g. pope,chair."),
    task_arg: list[str] = typer.Option([], "--task-arg", help="Options of the excluded tasks, TASK.KEY=VALUE."),
    seed: int = typer.Option(0),
) -> None:
    """Preference pairs in TRL's vision format (images, prompt, chosen, rejected) with provenance."""
    from .files import atomic_write_json
    from .train import builders
    from .train.mix import mix_from_run as adaptive_mix
    from .train.pairs import PairSet, drop_contaminated
    from .annotations import load_graphs

    strategies = [s.strip() for s in strategy.split(",") if s.strip()]
    if "own_captions" in strategies:
        fail("own_captions samples captions from the model being tuned: use `mmhallu loop --strategy own_captions` (it samples after the base run)")
    unknown = [s for s in strategies if s not in builders.STRATEGIES]
    if unknown:
        fail(f"unknown strategy {', '.join(unknown)}; choose {', '.join(builders.STRATEGIES)}")
    try:
        weights, evidence = adaptive_mix(mix_from_run) if mix_from_run else (_parse_mix(mix), {})
        pairs = []
        if set(builders.ANNOTATION_STRATEGIES) & set(strategies):
            if not annotations or not images:
                fail(f"{', '.join(builders.ANNOTATION_STRATEGIES)} need --annotations FILE and --images DIR")
            graphs = load_graphs(annotations)
            if "finer" in strategies:
                pairs += builders.finer_pairs(graphs, images, weights, neg_ratio, seed, answer_style, both_polarities)
            if "contrast" in strategies:
                pairs += builders.contrast_pairs(graphs, images, small_quantile, partners, answer_style)
            if "caption_swap" in strategies:
                pairs += builders.caption_swap_pairs(graphs, images, _split(swap_kinds), caption_template or builders.DEFAULT_CAPTION_TEMPLATES, small_quantile, seed)
            if "povid" in strategies:
                injector = None
                if injector_model:
                    from .backends.openai_chat import ChatClient

                    client = ChatClient(injector_base_url, injector_model)
                    ask = "Rewrite this image description so that it adds one object that is not there and changes one attribute. Keep the style; output only the description.\n\n"
                    injector = lambda text: client.complete_one([{"role": "user", "content": ask + text}]).text or text
                pairs += builders.povid_pairs(graphs, images, seed, injector, object_order)
                if noise_model:
                    from .backends import create_backend
                    from .types import GenerationConfig, Request, user_message

                    backend = create_backend("transformers", model=noise_model)
                    gen = GenerationConfig(max_new_tokens=96)
                    answer = lambda paths: [r.text for r in backend.generate([Request(str(i), user_message(builders.DESCRIBE), [p], gen) for i, p in enumerate(paths)])]
                    pairs += builders.noised_image_pairs(graphs, images, answer, out.parent / f"{out.stem}_noised", noise_strength, seed)
        if "hadpo" in strategies:
            if not run_dir:
                fail("hadpo needs --run RUN_DIR (a run of the model on training images)")
            refs = None
            if reference_captions:
                data = json.loads(reference_captions.read_text())
                refs = {}
                for ann in data["annotations"]:
                    refs.setdefault(ann["image_id"], ann["caption"])
            pairs += builders.hadpo_pairs(run_dir, refs)
        excluded = [t.strip() for t in exclude_eval_tasks.split(",")] if exclude_eval_tasks else []
        pairs, dropped = drop_contaminated(pairs, excluded, parse_task_args(task_arg))
    except _user_errors() as exc:
        fail(str(exc))
    PairSet(pairs, dropped, weights, {"strategies": strategies, "mix_evidence": evidence}).write(out)
    if mix_from_run:
        atomic_write_json(out.with_suffix(".mix.json"), {"mix": weights, **evidence})
    typer.echo(f"wrote {len(pairs)} pairs to {out} ({dropped} dropped: images used by {', '.join(excluded) or 'no'} evaluation tasks); mix {weights}")


@train_app.command("dpo")
def train_dpo_cmd(
    model: str = typer.Option(..., help="Base model folder or hub id."),
    pairs: Path = typer.Option(..., help="pairs.jsonl from `mmhallu pairs build`."),
    out: Path = typer.Option(..., help="Output folder (adapter or full model, processor, train_log.jsonl, configs)."),
    config: Optional[Path] = typer.Option(None, help="YAML with TrainConfig fields and any DPOConfig field."),
    full: bool = typer.Option(False, help="Full fine-tuning instead of LoRA."),
    beta: Optional[float] = typer.Option(None),
    lr: Optional[float] = typer.Option(None, "--lr"),
    epochs: Optional[float] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    grad_accum: Optional[int] = typer.Option(None),
    loss_type: Optional[str] = typer.Option(None, help="TRL loss types, comma-separated, e.g. sigmoid,sft."),
    loss_weights: Optional[str] = typer.Option(None, help="Weights for the loss types, e.g. 1,0.5."),
    lora_r: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar or per-step metrics on stdout (train_log.jsonl has them)."),
) -> None:
    """DPO on preference pairs with TRL (LoRA by default). Multi-GPU: `accelerate launch -m mmhallu_eval.cli train dpo ...`."""
    from .train.dpo import TrainConfig, train_dpo

    overrides = {
        "full": full or None, "beta": beta, "learning_rate": lr, "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size,
        "grad_accum": grad_accum, "lora_r": lora_r, "seed": seed,
        "loss_type": loss_type.split(",") if loss_type else None,
        "loss_weights": [float(w) for w in loss_weights.split(",")] if loss_weights else None,
    }
    try:
        if config:
            cfg = TrainConfig.from_yaml(config, model=model, pairs=str(pairs), out=str(out), **overrides)
        else:
            cfg = TrainConfig(model=model, pairs=str(pairs), out=str(out), **{k: v for k, v in overrides.items() if v is not None})
        path = train_dpo(cfg, show_progress=not no_progress)
    except _user_errors() as exc:
        fail(str(exc))
    typer.echo(f"wrote {'model' if cfg.full else 'LoRA adapter'} to {path} (log: {path / 'train_log.jsonl'})")


@app.command("loop")
def loop_cmd(
    model: str = typer.Option(..., help="Base model."),
    train_data: Path = typer.Option(..., help="Training annotations: scene-graph JSON or COCO instances file."),
    train_images: Path = typer.Option(..., help="Folder the training annotations' file names are relative to."),
    tasks: str = typer.Option(..., help="Evaluation tasks, e.g. pope,finer_comprecap."),
    out: Path = typer.Option(..., help="Loop folder: base/, pairs.jsonl, adapter/, tuned/, compare/, loop.json."),
    task_arg: list[str] = typer.Option([], "--task-arg", help="Task option TASK.KEY=VALUE (repeatable)."),
    strategy: str = typer.Option("finer,povid", help="Pair strategies built from the training annotations (finer, povid, contrast, caption_swap) or from the base model's own captions (own_captions)."),
    answer_style: str = typer.Option("sentence", help="finer and contrast pairs: sentence or short (one-word answers to short-answer prompts)."),
    both_polarities: bool = typer.Option(False, help="finer pairs: a positive and a one-slot negative per chosen image and type."),
    small_quantile: float = typer.Option(0.25, help="contrast and caption_swap pairs: the smallest share of objects (box area relative to the image) that counts as small."),
    swap_kinds: str = typer.Option("swap,swap_partner", help="caption_swap: swap (a random object → the absent class co-occurring most with the image's objects, per template), swap_partner (each small object → its most co-occurring class when absent) and/or add_partner (that class named after the small object instead)."),
    caption_template: list[str] = typer.Option([], "--caption-template", help="caption_swap: a caption template with {objects} (objects with attributes) or {names} (class names) (repeatable; default 'The image shows {objects}.')."),
    partners: int = typer.Option(1, help="contrast pairs: how many of a small object's most co-occurring classes to ask about when absent."),
    object_order: str = typer.Option("annotation", help="povid pairs: name the objects in the annotations' order or in reading order."),
    own_samples: int = typer.Option(16, help="own_captions: captions sampled per training image from the base model (best-of-n)."),
    own_temperature: float = typer.Option(0.7, help="own_captions: sampling temperature."),
    own_max_per_image: int = typer.Option(4, help="own_captions: at most this many pairs (distinct hallucinating captions) per image."),
    own_repeat: int = typer.Option(1, help="own_captions: write each pair this many times (its weight in the DPO mix)."),
    own_synonyms: Optional[Path] = typer.Option(None, help="own_captions: CHAIR synonyms file for judging the captions (default: chair.synonyms from --task-arg, else COCO's)."),
    mix: Optional[str] = typer.Option(None, help="Fixed pair-type weights, e.g. obj=1,attr=0.2,rel=0.2,wh=0.2 (default: set from the base run's failures)."),
    limit: Optional[int] = typer.Option(None),
    max_new_tokens: Optional[int] = typer.Option(None),
    epochs: float = typer.Option(1.0),
    lr: float = typer.Option(5e-5, "--lr"),
    beta: float = typer.Option(0.1),
    batch_size: int = typer.Option(4),
    loss_type: str = typer.Option("sigmoid"),
    device: str = typer.Option("auto"),
    no_progress: bool = typer.Option(False),
) -> None:
    """Evaluate → pairs from the base run's failures → DPO → evaluate the adapter → compare (resumable)."""
    from .train.builders import DEFAULT_CAPTION_TEMPLATES
    from .train.loop import LoopConfig, run_loop

    cfg = LoopConfig(
        model=model, train_annotations=str(train_data), train_images=str(train_images), tasks=[t.strip() for t in tasks.split(",")],
        out=out, task_args=parse_task_args(task_arg), strategies=[s.strip() for s in strategy.split(",")], limit=limit,
        max_new_tokens=max_new_tokens, backend_args={"device": device}, finer_answer_style=answer_style,
        finer_both_polarities=both_polarities, mix=_parse_mix(mix) if mix else None,
        contrast_small_quantile=small_quantile, contrast_partners=partners, povid_order=object_order,
        caption_swap_kinds=_split(swap_kinds), caption_templates=caption_template or list(DEFAULT_CAPTION_TEMPLATES),
        own_samples=own_samples, own_temperature=own_temperature, own_max_per_image=own_max_per_image, own_repeat=own_repeat,
        own_synonyms=str(own_synonyms) if own_synonyms else None,
        train={"epochs": epochs, "learning_rate": lr, "beta": beta, "batch_size": batch_size, "loss_type": loss_type.split(",")},
        show_progress=not no_progress,
    )
    try:
        state = run_loop(cfg, log=typer.echo)
    except _user_errors() as exc:
        fail(str(exc))
    typer.echo(f"loop done: {out / 'loop.json'}; compare page {state['stages']['compare']['outputs']['html']}")


@world_app.command("build")
def world_build_cmd(
    out: Path = typer.Option(..., help="Folder for images/, COCO-style annotations, scene graphs, synonyms.txt."),
    seed: int = typer.Option(0),
    train: int = typer.Option(400, help="Training images."),
    test: int = typer.Option(200, help="Test images."),
) -> None:
    """Generate the shapes world: scenes with full ground truth in standard formats (deterministic per seed)."""
    from .world.shapes import build_world

    build_world(out, seed=seed, n_train=train, n_test=test)
    typer.echo(f"wrote the shapes world to {out} ({train} train, {test} test images)")


@build_app.command("pope")
def build_pope_cmd(
    coco_annotations: Path = typer.Option(..., help="COCO instances JSON (or a folder with instances_<split>.json)."),
    out: Path = typer.Option(..., help="Folder for <name>_pope_{random,popular,adversarial}.json."),
    split: str = typer.Option("val2014", help="Which instances_<split>.json when a folder is given."),
    name: str = typer.Option("coco", help="Dataset name in the file names."),
    n_images: int = typer.Option(500),
    per_image: int = typer.Option(3, help="Positive (and negative) questions per image."),
    min_objects: int = typer.Option(3, help="Only images with at least this many distinct objects."),
    seed: int = typer.Option(0),
) -> None:
    """POPE's own sampling: per image 3 present and 3 absent objects, negatives random/popular/adversarial."""
    from .build.pope import build_pope

    instances = coco_annotations / f"instances_{split}.json" if coco_annotations.is_dir() else coco_annotations
    if not instances.is_file():
        fail(f"{instances}: COCO instances file not found")
    try:
        paths = build_pope(instances, out, name, n_images, per_image, min_objects, seed)
    except ValueError as exc:
        fail(str(exc))
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


def _annotations_arg(path: Path, split: str) -> Path:
    if path.is_dir():
        for candidate in (path / f"scene_graph_{split}.json", path / f"instances_{split}.json"):
            if candidate.is_file():
                return candidate
        fail(f"{path}: no scene_graph_{split}.json or instances_{split}.json")
    return path


@build_app.command("mme")
def build_mme_cmd(annotations: Path = typer.Option(...), out: Path = typer.Option(...), split: str = typer.Option("test"), seed: int = typer.Option(0)) -> None:
    """MME-style yes/no pairs (existence, count, position, color) as flat <subtask>.txt lists."""
    from .build.qa import build_mme

    paths = build_mme(_annotations_arg(annotations, split), out, seed)
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@build_app.command("finer")
def build_finer_cmd(annotations: Path = typer.Option(...), out: Path = typer.Option(...), split: str = typer.Option("test"), seed: int = typer.Option(0)) -> None:
    """FINER-style 5-way MCQ pairs (positive + one-slot negative) for multi_obj, multi_attr, multi_rel, wh."""
    from .build.qa import build_finer

    paths = build_finer(_annotations_arg(annotations, split), out, seed)
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@build_app.command("mmhal")
def build_mmhal_cmd(annotations: Path = typer.Option(...), out: Path = typer.Option(..., help="JSON file (the MMHal template format)."), split: str = typer.Option("test"), n_items: int = typer.Option(96), seed: int = typer.Option(0)) -> None:
    """MMHal-style open questions with image_content, in the response_template.json format."""
    from .build.qa import build_mmhal

    typer.echo(f"wrote {build_mmhal(_annotations_arg(annotations, split), out, n_items, seed)}")


def _family_names() -> list[str]:
    from .world.families import FAMILIES

    return sorted(FAMILIES)


@world_app.command("tiny-model")
def tiny_model_cmd(
    out: Path = typer.Option(..., help="Folder to save the model and processor to."),
    arch: str = typer.Option("llava", help="llava or idefics3 (ChatML test models), or a family name (see --family)."),
    family: Optional[str] = typer.Option(None, help="A published family's layout and chat template: " + ", ".join(_family_names()) + "."),
    seed: int = typer.Option(0),
) -> None:
    """Build a tiny random-weight VLM with a locally trained tokenizer (offline, seconds)."""
    from .world.families import build_family
    from .world.tiny_models import build_tiny_model

    try:
        if family:
            build_family(family, out, seed=seed)
        else:
            build_tiny_model(arch, out, seed=seed)  # type: ignore[arg-type]
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"wrote {family or arch} tiny model to {out}")


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
    out: Path = typer.Option(Path("reports/demo"), help="Folder for the world, the runs, the adapter and the reports."),
    quick: bool = typer.Option(False, help="A small world and short training: checks the pipeline in about a minute."),
    no_progress: bool = typer.Option(False, help="Hide progress bars."),
) -> None:
    """The embedded default, offline on a CPU: shapes world → demo VLM → POPE/CHAIR/MME/FINER → DPO pairs →
    DPO (LoRA) → evaluate again → compare report."""
    from .demo import DemoSettings, run_demo
    from .world.demo_model import DemoTraining

    quick_training = DemoTraining(language_steps=20, language_scenes=100, existence_steps=10, vision_steps=10, joint_steps=10,
                                  caption_language_steps=10, caption_scenes=50, caption_joint_steps=10)
    settings = DemoSettings(n_train=24, n_test=16, training=quick_training, dpo_batch=4, dpo_max_steps=6, own_samples=4) if quick else DemoSettings()
    try:
        state = run_demo(out, settings, log=typer.echo, show_progress=not no_progress)
    except _user_errors() as exc:
        fail(str(exc))
    compare = json.loads(Path(state["stages"]["compare"]["outputs"]["json"]).read_text())
    for task, t in compare["tasks"].items():
        for metric, e in t["metrics"].items():
            if e["delta"] is not None and e.get("higher_is_better") is not None:
                mark = " (significant)" if e["significant"] else ""
                typer.echo(f"  {task}/{metric}: {e['base']:.4f} → {e['tuned']:.4f}  Δ {e['delta']:+.4f}  p={e['p_value']:.3g}{mark}")
    typer.echo(f"compare report: {state['stages']['compare']['outputs']['html']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
