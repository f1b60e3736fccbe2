"""`mmhallu tasks` and `mmhallu run`: what can be evaluated, and evaluating a model."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..options import describe
from ..registry import get_task, include_path, task_names
from .common import fail, group, headline, parse_parsers, parse_task_args, parse_template_args, require_choice, say, split, user_errors

app = group()


@app.command("tasks")
def tasks_cmd(
    task: Optional[str] = typer.Argument(None, help="A task: list its options (type, default, help)."),
    include: list[Path] = typer.Option([], "--include-path", help="Folder with user task plugins."),
) -> None:
    """List the registered tasks with version, default parser and data source, or one task's options."""
    try:
        for path in include:
            include_path(path)
        rows = [get_task(task)] if task else [get_task(name) for name in task_names()]
    except user_errors() as exc:
        fail(str(exc))
    if task:
        spec = rows[0]
        typer.echo(f"{spec.name} {spec.version}: {spec.description}\nparsers: {', '.join(sorted(spec.parsers))} (default {spec.default_parser})\noptions (--task-arg {spec.name}.KEY=VALUE):")
        for o in describe(spec.options):
            default = f" [default: {o['default']}]" if o["default"] else ""
            typer.echo(f"  {o['name']} ({o['type']}){default}: {o['help']}")
        return
    table = [("task", "version", "parser (others)", "data source")]
    for s in rows:
        others = ", ".join(p for p in sorted(s.parsers) if p != s.default_parser)
        table.append((s.name, s.version, f"{s.default_parser} ({others})" if others else s.default_parser, s.data_source))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        typer.echo("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[3]]))


@app.command("run")
def run_cmd(
    model: str = typer.Option(..., help="Local model folder or hub id."),
    tasks: str = typer.Option(..., help="Comma-separated task names, e.g. pope,chair."),
    out: Path = typer.Option(..., help="Run folder to write (manifest, <task>/result.json, cache)."),
    backend: str = typer.Option("transformers", help="Inference backend."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate only the first N samples of each task."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Requests per generate call (default: the backend's)."),
    max_new_tokens: Optional[int] = typer.Option(None, min=1, help="Override the tasks' max_new_tokens."),
    parser: Optional[str] = typer.Option(None, help="Parser for all tasks, or TASK=PARSER,..."),
    task_arg: list[str] = typer.Option([], "--task-arg", help="Task option TASK.KEY=VALUE (repeatable)."),
    include: list[Path] = typer.Option([], "--include-path", help="Folder with user task plugins."),
    dtype: str = typer.Option("auto", help="auto (on CUDA a float16 checkpoint in fp16, others in bf16; fp32 elsewhere), float32, bfloat16, float16."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    revision: Optional[str] = typer.Option(None, help="Model revision for hub ids."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter folder to evaluate on top of --model."),
    merge_adapter: bool = typer.Option(False, "--merge-adapter", help="--backend transformers: add the adapter's LoRA weights into the model before evaluating (faster; answers can differ from the unmerged adapter's in floating-point rounding); written into the manifest."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run modelling/processor code shipped with the checkpoint (transformers, vllm); written into the manifest."),
    chat_template: Optional[Path] = typer.Option(None, help="Jinja chat template for a checkpoint that has none (or to replace its own); written into the manifest."),
    chat_template_arg: list[str] = typer.Option([], "--chat-template-arg", help="A variable the chat template is rendered with, NAME=VALUE (repeatable; JSON values), e.g. enable_thinking=false for a hybrid reasoning model; sent as chat_template_kwargs with --backend openai; written into the manifest."),
    reasoning: str = typer.Option("strip", help="strip: parse the answer after </think> (reasoning models); keep: parse the raw text. The raw text is always kept."),
    base_url: Optional[str] = typer.Option(None, help="--backend openai: the server's base URL, e.g. http://localhost:8000/v1."),
    api_key_env: Optional[str] = typer.Option(None, help="--backend openai: environment variable holding the API key."),
    concurrency: int = typer.Option(8, min=1, help="--backend openai: requests in flight."),
    max_model_len: Optional[int] = typer.Option(None, min=1, help="--backend vllm: context length (longer requests are recorded as failed samples)."),
    gpu_memory_utilization: float = typer.Option(0.9, min=0.01, max=1.0, help="--backend vllm: share of GPU memory for weights and KV cache."),
    tensor_parallel_size: int = typer.Option(1, min=1, help="--backend vllm: GPUs per engine (tensor parallelism)."),
    max_images: int = typer.Option(1, min=1, help="--backend vllm: images per prompt (limit_mm_per_prompt)."),
    enforce_eager: bool = typer.Option(False, help="--backend vllm: skip graph compilation (faster start, slower decode)."),
    data_parallel: int = typer.Option(1, min=1, help="Replicas of the backend (Ray actors), e.g. one per GPU; results are identical to one replica."),
    ray_address: Optional[str] = typer.Option(None, help="Run the replicas on an existing Ray cluster, e.g. auto or ray://head:10001."),
    judge_model: Optional[str] = typer.Option(None, help="Judge model for judged tasks (MMHal-Bench), e.g. gpt-4o."),
    judge_base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL of the judge (e.g. a local vllm serve)."),
    judge_api_key_env: Optional[str] = typer.Option(None, help="Environment variable with the judge's API key (default OPENAI_API_KEY)."),
    judge_backend: Optional[str] = typer.Option(None, help="openai (default), a local backend name (transformers), or a judge a task declares (MMHal-Bench: scene-graph-oracle, synthetic data only)."),
    resume: bool = typer.Option(False, help="Continue in a folder that holds a different run, reusing its cache."),
    overwrite: bool = typer.Option(False, help="Replace the run the output folder holds (only a run folder's own files are deleted)."),
    rebuild_cache: bool = typer.Option(False, help="Start the folder's response cache afresh (after it was reported corrupt or edited)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Evaluate a model on one or more tasks; re-running the same command resumes from the cache."""
    from ..reasoning import REASONING_MODES
    from ..runner import RunConfig, run
    from ..scoring import all_failed

    require_choice("--reasoning", reasoning, REASONING_MODES)
    if merge_adapter and (backend != "transformers" or not adapter):
        fail("--merge-adapter merges an --adapter into the model of --backend transformers; give both (vLLM applies adapters unmerged)")
    task_list = split(tasks)
    if not task_list:
        fail(f"--tasks {tasks!r}: name at least one task (mmhallu tasks lists them)")
    task_args = parse_task_args(task_arg)
    template_args = parse_template_args(chat_template_arg)
    judge = {"judge_model": judge_model, "judge_base_url": judge_base_url, "judge_api_key_env": judge_api_key_env, "judge_backend": judge_backend}
    try:
        for path in include:
            include_path(path)
        judged = [name for name in task_list if get_task(name).capabilities.judged]
    except user_errors() as exc:
        fail(str(exc))
    for name in judged:  # the --judge-* options go to the judged tasks; their replies are cached in the run folder
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
        backend_args=_backend_args(backend, dtype=dtype, device=device, revision=revision, adapter=adapter, merge_adapter=merge_adapter or None,
                                   base_url=base_url, api_key_env=api_key_env,
                                   trust_remote_code=trust_remote_code or None, chat_template=str(chat_template) if chat_template else None,
                                   chat_template_args=template_args or None,
                                   concurrency=concurrency, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                                   tensor_parallel_size=tensor_parallel_size, max_images=max_images,
                                   enforce_eager=enforce_eager),
        data_parallel=data_parallel,
        ray_address=ray_address,
        include_paths=[str(p) for p in include],
        reasoning=reasoning,  # type: ignore[arg-type]
        resume=resume,
        overwrite=overwrite,
        rebuild_cache=rebuild_cache,
        show_progress=not no_progress,
    )
    try:
        results = run(config)
    except user_errors() as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"interrupted: the responses of finished batches are kept in {out / 'cache.sqlite'}; rerun the same command to continue "
             "from them", code=130)
    for name, result in results.items():
        typer.echo(f"{name}: {headline(result)}")
    typer.echo(f"results in {out}")
    failed = all_failed(results)
    if failed:
        for line in failed:
            say(f"error: {line}", typer.colors.RED)
        raise typer.Exit(1)


def _backend_args(backend: str, **kwargs: Any) -> dict[str, Any]:
    """Only the options that concern the chosen backend go into the run's identity."""
    keys = {
        "openai": ("base_url", "api_key_env", "concurrency", "revision", "chat_template_args"),
        "vllm": ("dtype", "revision", "adapter", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "max_images", "enforce_eager",
                 "trust_remote_code", "chat_template", "chat_template_args"),
    }.get(backend, ("dtype", "device", "revision", "adapter", "merge_adapter", "trust_remote_code", "chat_template", "chat_template_args"))
    return {k: v for k, v in kwargs.items() if k in keys and v is not None}

