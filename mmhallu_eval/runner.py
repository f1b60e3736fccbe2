"""`mmhallu run`: load samples → build requests → cached batched generation → score → write, task by task."""
from __future__ import annotations

import difflib
import functools
import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .backends import Backend, create_backend
from .backends.cached import generate_cached
from .cache import ResponseCache
from .data import missing_files
from .paired import keep_whole_units
from .quiet import hide_library_progress_bars
from .registry import get_task, include_path
from .reasoning import Reasoning
from .rundir import RunDir, now_iso
from .files import iter_jsonl, json_encoder
from .heap import frozen_heap
from .options import is_count
from .scoring import RecordStream, ResultBuilder, check_units, file_names, image_names
from .task import TaskError, TaskSpec
from .terminal import warn
from .types import Response, Sample


@dataclass
class RunConfig:
    model: str
    tasks: list[str]
    out: Path
    backend: str = "transformers"
    limit: int | None = None
    batch_size: int | None = None
    max_new_tokens: int | None = None
    parsers: dict[str, str] = field(default_factory=dict)
    task_args: dict[str, dict[str, str]] = field(default_factory=dict)
    backend_args: dict[str, Any] = field(default_factory=dict)
    include_paths: list[str] = field(default_factory=list)
    #: strip: parsers read the answer after </think>; keep: the raw text (reasoning.py)
    reasoning: Reasoning = "strip"
    resume: bool = False
    overwrite: bool = False
    #: drop the run folder's response cache first (after it was reported corrupt or edited)
    rebuild_cache: bool = False
    show_progress: bool = True
    #: replicas of the backend (Ray actors); neither this nor the cluster address changes results
    data_parallel: int = 1
    ray_address: str | None = None

    def __post_init__(self) -> None:
        """Settings that cannot run are refused before anything loads; a task named twice is run once."""
        for name in ("limit", "batch_size", "max_new_tokens", "data_parallel"):
            value = getattr(self, name)
            if value is not None and not is_count(value):
                raise TaskError(f"run setting {name}={value!r}: give a whole number of at least 1")
        self.tasks = list(dict.fromkeys(self.tasks))

    def identity(self, model_fingerprint: str) -> dict[str, Any]:
        """What makes two runs the same run (batch size and progress do not change results)."""
        return {
            "model": self.model,
            "model_fingerprint": model_fingerprint,
            "backend": self.backend,
            "backend_args": {k: v for k, v in self.backend_args.items() if k not in ("batch_size", "gpu_memory_utilization", "concurrency", "enforce_eager")},
            "tasks": self.tasks,
            "limit": self.limit,
            "max_new_tokens": self.max_new_tokens,
            "parsers": self.parsers,
            "task_args": self.task_args,
            "reasoning": self.reasoning,
        }


#: `json.dumps(..., default=str)`, the encoder built once (one line per sample)
_encode_sample = json_encoder(default=str, ensure_ascii=True)


def samples_hash(samples: list[Sample]) -> str:
    """Identifies the evaluated set in the manifest (ids, prompts, targets, image file names): the same data in another
    folder or on another machine has the same hash."""
    h = hashlib.sha256()
    for s in samples:
        h.update(_encode_sample([s.id, s.prompt, s.target, file_names(image_names(s))]).encode())
    return h.hexdigest()[:16]


def data_roots(samples: list[Sample]) -> list[str]:
    """The folders the task's image files are in (absolute): the only places the run report shows images from."""
    named = {im for s in samples for im in s.images if isinstance(im, (str, Path))}  # POPE shows each image six times
    return sorted({os.path.dirname(os.path.abspath(im)) for im in named})[:1000]


def load_task_samples(spec: TaskSpec, options: Any, limit: int | None) -> list[Sample]:
    samples = spec.load(options)  # checked there: Samples, ids of their own
    if not samples:
        raise TaskError(f"task {spec.name!r}: its data has no samples (an empty file or folder?); check the task's data options "
                        f"(mmhallu tasks {spec.name})")
    if limit:
        samples = keep_whole_units(samples, spec.limit_unit, limit) if spec.limit_unit is not None else samples[:limit]
    check_units(spec, samples)
    return samples


def load_tasks(tasks: list[str], task_args: dict[str, dict[str, Any]], parsers: dict[str, str], limit: int | None
               ) -> tuple[list[TaskSpec], dict[str, Any], dict[str, list[Sample]]]:
    """The tasks, their typed options and their samples, each checked as it is read."""
    specs = [get_task(name) for name in tasks]
    options = check_task_options(specs, task_args, parsers)
    return specs, options, {spec.name: load_task_samples(spec, options[spec.name], limit) for spec in specs}


def task_data_hashes(tasks: list[str], task_args: dict[str, dict[str, Any]], limit: int | None) -> dict[str, str]:
    """Each task's `samples_hash` for the data it loads now (what a run's manifest records for the data it ran on):
    a resumed pipeline compares the two to see a data file changed in place, which its paths do not show."""
    _, _, samples = load_tasks(tasks, task_args, {}, limit)
    return {name: samples_hash(task_samples) for name, task_samples in samples.items()}


def check_images(spec: TaskSpec, options: Any, samples: list[Sample]) -> None:
    """Each distinct image file looked up once before the model loads. None of them there is a wrong images folder
    (or images not downloaded): an error now, not a model load followed by every sample failing. Some missing: one
    line saying how many; their samples are recorded as missing_image failures and the run goes on."""
    named, missing = missing_files(im for s in samples for im in s.images if isinstance(im, (str, Path)))
    if not missing:
        return
    if len(missing) == len(named):
        fix = (f"give the folder that holds them as --task-arg {spec.name}.images=FOLDER" if hasattr(options, "images")
               else f"check the task's data options (mmhallu tasks {spec.name})")
        raise TaskError(f"task {spec.name!r}: none of its {len(named)} image files is there (first: {missing[0]}); {fix}")
    warn(f"[{spec.name}] {len(missing)} of {len(named)} image files are missing (first: {missing[0]}): their samples are "
         "recorded as missing_image failures")


def check_task_options(specs: list[TaskSpec], task_args: dict[str, dict[str, Any]], parsers: dict[str, str]) -> dict[str, Any]:
    """Every `--task-arg` and `--parser` parsed and checked before anything loads: typed options per task."""
    names = [s.name for s in specs]
    for where, given in (("--task-arg", task_args), ("--parser", parsers)):
        for task in given:
            if task not in names:
                close = difflib.get_close_matches(task, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise TaskError(f"{where} names task {task!r}, which is not in --tasks ({', '.join(names)}).{hint}")
    typed = {}
    for spec in specs:
        typed[spec.name] = spec.parse_options(task_args.get(spec.name, {}))
        spec.parser(parsers.get(spec.name))
        if typed[spec.name].max_new_tokens is not None and typed[spec.name].max_new_tokens < 1:
            raise TaskError(f"--task-arg {spec.name}.max_new_tokens={typed[spec.name].max_new_tokens}: give a positive whole number")
    return typed


def run(config: RunConfig, backend: Backend | None = None) -> dict[str, dict[str, Any]]:
    """Evaluate every task; each task's files are written as soon as it finishes. Everything that can be checked
    without the model — tasks, options, parsers, the data of every task, the output folder — is checked first, so a
    mistake costs no model load and leaves nothing behind (and `--overwrite` deletes nothing)."""
    for path in config.include_paths:
        include_path(path)
    specs, options, samples = load_tasks(config.tasks, config.task_args, config.parsers, config.limit)
    parsers = {spec.name: spec.parser(config.parsers.get(spec.name)) for spec in specs}
    for spec in specs:
        check_images(spec, options[spec.name], samples[spec.name])
    rundir = RunDir(config.out)
    rundir.check_usable(config.overwrite)
    own_backend = backend is None
    if not config.show_progress:
        hide_library_progress_bars()  # the model's weight-loading bar too
    if backend is None:
        backend = _make_backend(config)
    results: dict[str, dict[str, Any]] = {}
    try:
        with rundir.lock():
            manifest = rundir.prepare(config.identity(backend.fingerprint()), config.resume, config.overwrite)
            manifest["model"] = described_model(backend, manifest.get("model"))
            if config.rebuild_cache:
                ResponseCache.remove(rundir.cache_path)
            cache = ResponseCache(rundir.cache_path)
            try:
                with frozen_heap():  # the loaded model is not walked by the cycle collector during generation
                    for spec in specs:
                        results[spec.name] = _run_task(spec, parsers[spec.name], options[spec.name], samples[spec.name], config, backend, cache, rundir, manifest)
            finally:
                cache.close()
            manifest["finished"] = now_iso()
            rundir.write_manifest(manifest)
    finally:
        if own_backend:
            backend.close()
    return results


def described_model(backend: Backend, before: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's record of the model, with how it sampled: a server that refused the requested temperature (learnt
    while running) answered at its own default, and so did the answers a resumed run keeps from the run before."""
    described = backend.describe()
    if "sampling" not in described and before and "sampling" in before and before.get("model") == described.get("model"):
        described["sampling"] = before["sampling"]
    return described


def _make_backend(config: RunConfig) -> Backend:
    if config.data_parallel > 1 or config.ray_address:
        from .backends.parallel import DataParallelBackend

        return DataParallelBackend(config.backend, config.data_parallel, config.ray_address, model=config.model, **config.backend_args)
    return create_backend(config.backend, model=config.model, **config.backend_args)


def _run_task(spec, parser, options: Any, samples: list[Sample], config: RunConfig, backend: Backend, cache: ResponseCache, rundir: RunDir,
              manifest: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    generation = spec.generation.with_overrides(max_new_tokens=options.max_new_tokens or config.max_new_tokens)
    requests = [spec.build_request(s, generation) for s in samples]
    records = RecordStream(spec, parser, samples, options, config.reasoning, backend.opens_reasoning)
    builder = ResultBuilder(spec)

    @functools.cache  # (`cache` here is the response cache)
    def evaluated() -> dict[str, Any]:
        """What identifies the evaluated set, made once: it needs no answers, so it is made while the engine works."""
        return {"n_samples": len(samples), "samples_hash": samples_hash(samples), "data_roots": data_roots(samples)}

    # each group of answers is scored and written while the engine works on the rest (a streaming backend's)
    with rundir.samples_writer(spec.name, each=builder.add) as out:

        def write_ready(found: Mapping[str, Response]) -> None:
            for record in records.ready(found):
                out.write(record)
            evaluated()

        responses, stats = generate_cached(
            backend, requests, cache, config.batch_size, desc=spec.name, show_progress=config.show_progress, on_group=write_ready
        )
        for record in records.rest(responses):
            out.write(record)
        manifest["model"] = described_model(backend, manifest.get("model"))  # with what was learnt while it ran
        sampling = {"sampling": manifest["model"]["sampling"]} if "sampling" in manifest["model"] else {}
        result = out.commit(meanwhile=lambda: builder.result(parser, extra={"generation": generation.to_dict(), **sampling, "reasoning": config.reasoning}))
    assert result is not None
    rundir.write_result(spec.name, result)
    if spec.export is not None:  # official-format files, from the records just written
        spec.export([row for _, row in iter_jsonl(rundir.task_dir(spec.name) / "samples.jsonl")], rundir.task_dir(spec.name))
    data = evaluated()  # made here when no group was handed back (every answer cached)
    total = time.perf_counter() - t0  # everything the task costs but the manifest's own write
    manifest["tasks"][spec.name] = {
        "task_version": spec.version,
        "parser": parser.name,
        "parser_version": parser.version,
        "reasoning": config.reasoning,
        "generation": generation.to_dict(),
        **sampling,
        **data,
        **({"judge": result["judge"], "prompt_version": result.get("prompt_version")} if result.get("judge") else {}),
        "stats": {**asdict(stats), "total_seconds": round(total, 3), "backend_seconds": round(stats.backend_seconds, 3)},
        "finished": now_iso(),
    }
    rundir.write_manifest(manifest)
    warn(f"[{spec.name}] {len(samples)} samples: {stats.generated} generated, {stats.cached} cached, "
         f"{stats.failed} failed → {rundir.task_dir(spec.name) / 'result.json'}")
    return result
