"""`mmhallu pairs build` and `mmhallu loop`: their strategy flags are generated from the pair strategies' option
declarations (train/strategies), so a new strategy brings its own flags and help."""
from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, Optional

import typer

from ..options import fields_of
from ..report.scorecard import ADJUST_HELP, ADJUSTMENTS
from ..train.dpo import TRAIN_DEFAULTS as D
from .common import (command, declared_options, fail, given, option, parse_task_args, parse_template_args, require_choice, split,
                     user_errors)


def strategy_params() -> list[inspect.Parameter]:
    """One flag per declared strategy option; an option two strategies share (same name) is one flag."""
    from ..train.strategy import get_strategy, strategy_names

    seen: set[str] = set()
    params = []
    for name in strategy_names():
        cls = get_strategy(name).options
        params += declared_options(cls, skip=tuple(seen), prefix=f"{name}: ")
        seen |= {f.name for f, _ in fields_of(cls)}
    return params


def strategy_values(values: dict[str, Any]) -> dict[str, Any]:
    from ..train.strategy import get_strategy, strategy_names

    names = {f.name for s in strategy_names() for f, _ in fields_of(get_strategy(s).options)}
    return {k: v for k, v in given(values).items() if k in names}


def parse_mix(value: str | None) -> dict[str, float]:
    from ..train.mix import DEFAULT_MIX

    if not value:
        return dict(DEFAULT_MIX)
    mix = {}
    for part in value.split(","):
        key, _, weight = part.partition("=")
        if key.strip() not in DEFAULT_MIX:
            fail(f"--mix {part!r}: pair types are {', '.join(DEFAULT_MIX)}")
        if key.strip() in mix:
            fail(f"--mix {value!r}: {key.strip()} is given twice; give each pair type once")
        try:
            mix[key.strip()] = float(weight)
        except ValueError:
            fail(f"--mix {part!r}: expected TYPE=WEIGHT")
        if not 0 <= mix[key.strip()] < math.inf:
            fail(f"--mix {part!r}: a weight is a finite number, 0 or more")
    if not any(mix.values()):
        fail(f"--mix {value!r}: at least one pair type needs a weight above 0")
    return mix


def _pairs_build(**values: Any) -> None:
    """Preference pairs in TRL's vision format (images, prompt, chosen, rejected) with provenance."""
    from ..files import atomic_write_json
    from ..outputs import check_outputs, file_in
    from ..train.mix import mix_from_run, probing_tasks
    from ..train.pairs import PairSet, drop_contaminated
    from ..train.strategy import PairContext, build_pairs, get_strategy, strategy_options

    strategies = split(values["strategy"])
    out = file_in(values["out"], "pairs.jsonl")
    try:
        check_outputs(_pairs_outputs(out, bool(values["mix_from_run"])), _pairs_inputs(values))
        for name in strategies:
            if "model" in get_strategy(name).needs:
                fail(f"{name} samples the model being tuned: use `mmhallu loop --strategy {name}` (it samples after the base run)")
        options = strategy_options(strategies, strategy_values(values))
        weights, evidence = mix_from_run(values["mix_from_run"]) if values["mix_from_run"] else (parse_mix(values["mix"]), {})
        if values["mix_from_run"] and not any(evidence["evidence"].values()):
            fail(f"--mix-from-run {values['mix_from_run']}: none of its tasks measures a pair type, so the mix would be the default; "
                 f"give a run of {', '.join(probing_tasks())}, or --mix")
        ctx = PairContext(annotations=values["annotations"], images=values["images"], seed=values["seed"], mix=weights, run=values["run"],
                          work_dir=out.parent / f"{out.stem}_files")
        pairs = build_pairs(strategies, ctx, options)
        excluded = split(values["exclude_eval_tasks"] or "")
        pairs, dropped = drop_contaminated(pairs, excluded, parse_task_args(values["task_arg"]))
    except user_errors() as exc:
        fail(str(exc))
    PairSet(pairs, dropped, weights, {"strategies": strategies, "mix_evidence": evidence}).write(out)
    if values["mix_from_run"]:
        atomic_write_json(_pairs_outputs(out, True)[-1], {"mix": weights, **evidence})
    typer.echo(f"wrote {len(pairs)} pairs to {out} ({dropped} dropped: images used by {', '.join(excluded) or 'no'} evaluation tasks); mix {weights}")


def _pairs_outputs(out: Path, mix_file: bool) -> list[Path]:
    """The files `pairs build` writes: the pairs, their .meta.json and, with --mix-from-run, the .mix.json."""
    return [out, out.with_suffix(".meta.json"), *([out.with_suffix(".mix.json")] if mix_file else [])]


def _pairs_inputs(values: dict[str, Any]) -> list[str | Path]:
    """Every file or folder `pairs build` reads: none of its outputs may replace one or lie inside one. A strategy's
    or an excluded task's option that names an existing path is read too."""
    named = [values[k] for k in ("annotations", "images", "run", "mix_from_run")]
    named += list(strategy_values(values).values()) + [v for args in parse_task_args(values["task_arg"]).values() for v in args.values()]
    return [v for v in named if isinstance(v, (str, Path)) and str(v) and Path(v).exists()]


def register_pairs_build(app: typer.Typer) -> None:
    from ..train.strategy import get_strategy, strategy_names

    described = "; ".join(f"{n}: {get_strategy(n).description}" for n in strategy_names())
    params = [
        option("strategy", str, ..., f"Pair strategies, comma-separated ({described})."),
        option("out", Path, ..., "pairs.jsonl to write (+ .meta.json with counts and the mix), or a folder (existing, or a name without an extension) to write pairs.jsonl in."),
        option("annotations", Optional[str], None, "Scene-graph JSON or COCO instances file (strategies built from annotations)."),
        option("images", Optional[str], None, "Folder the annotations' file names are relative to."),
        option("run", Optional[str], None, "A run on training images (hadpo: the failures of its tasks)."),
        option("mix", Optional[str], None, "Pair-type weights, e.g. obj=1,attr=2,rel=1,wh=0.5 (finer)."),
        option("mix_from_run", Optional[Path], None, "Set the mix from a base run's weakest slices."),
        option("exclude_eval_tasks", Optional[str], None, "Drop pairs on images of these evaluation tasks, e.g. pope,chair."),
        option("task_arg", list[str], [], "Options of the excluded tasks, TASK.KEY=VALUE."),
        option("seed", int, 0, "Seed of the pair sampling: the same seed writes the same pairs."),
        *strategy_params(),
    ]
    command(app, "build", _pairs_build, params, "Preference pairs in TRL's vision format (images, prompt, chosen, rejected) with provenance.")


def _loop(**values: Any) -> None:
    """Evaluate → pairs from the base run's failures → DPO → evaluate the adapter → compare (resumable)."""
    from ..train.loop import LoopConfig, run_loop

    require_choice("--adjust", values["adjust"], ADJUSTMENTS)
    # the same chat template variables for the evaluations, the sampled captions (backend_args) and training
    given_args = parse_template_args(values["chat_template_arg"])
    template_args = {"chat_template_args": given_args} if given_args else {}
    cfg = LoopConfig(
        model=values["model"], train_annotations=str(values["train_data"]), train_images=str(values["train_images"]), tasks=split(values["tasks"]),
        out=values["out"], task_args=parse_task_args(values["task_arg"]), strategies=split(values["strategy"]), pair_options=strategy_values(values),
        limit=values["limit"], max_new_tokens=values["max_new_tokens"], backend_args={"device": values["device"], **template_args},
        merge_adapter=values["merge_adapter"],
        mix=parse_mix(values["mix"]) if values["mix"] else None,
        train={"epochs": values["epochs"], "learning_rate": values["lr"], "beta": values["beta"], "batch_size": values["batch_size"],
               "loss_type": split(values["loss_type"]), **template_args},
        show_progress=not values["no_progress"], adjust=values["adjust"],
    )
    try:
        state = run_loop(cfg, log=typer.echo)
    except user_errors() as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"interrupted: rerun the same command to continue; finished stages are skipped (see {Path(cfg.out) / 'loop.json'}) and an "
             "evaluation continues from its cached responses", code=130)
    typer.echo(f"loop done: {Path(cfg.out) / 'loop.json'}; compare page {state['stages']['compare']['outputs']['html']}")


def register_loop(app: typer.Typer) -> None:
    params = [
        option("model", str, ..., "Base model."),
        option("train_data", Path, ..., "Training annotations: scene-graph JSON or COCO instances file."),
        option("train_images", Path, ..., "Folder the training annotations' file names are relative to."),
        option("tasks", str, ..., "Evaluation tasks, e.g. pope,finer_comprecap."),
        option("out", Path, ..., "Loop folder: base/, pairs.jsonl, adapter/, tuned/, compare/, loop.json."),
        option("task_arg", list[str], [], "Task option TASK.KEY=VALUE (repeatable)."),
        option("strategy", str, "finer,povid", "Pair strategies built from the training annotations or from the base model's own captions."),
        option("mix", Optional[str], None, "Fixed pair-type weights, e.g. obj=1,attr=0.2,rel=0.2,wh=0.2 (default: set from the base run's failures)."),
        option("limit", Optional[int], None, "Evaluate only the first N samples of each task (both evaluations).", min=1),
        option("max_new_tokens", Optional[int], None, "Override the tasks' max_new_tokens (both evaluations).", min=1),
        option("epochs", float, D["epochs"], "Passes over the pairs (a fraction allowed)."),
        option("lr", float, D["learning_rate"], "Learning rate."),
        option("beta", float, D["beta"], "DPO's β (TRL's beta): how far the policy may move from the reference."),
        option("batch_size", int, D["batch_size"], "Pairs per device per step.", min=1),
        option("loss_type", str, ",".join(D["loss_type"]), "TRL loss types, comma-separated, e.g. sigmoid,sft."),
        option("device", str, "auto", "auto, cpu, cuda, cuda:1, ... for the evaluations and the base model's sampled captions (training uses CUDA when there is one)."),
        option("chat_template_arg", list[str], [], "A variable the chat template is rendered with, NAME=VALUE (repeatable; JSON values), in "
               "both evaluations, the sampled captions and training, e.g. enable_thinking=false."),
        option("merge_adapter", bool, False, "Evaluate the tuned model with the adapter merged into the weights (faster; answers can differ from the unmerged adapter's in floating-point rounding)."),
        option("adjust", str, "none", "The compare stage's scorecard: " + ADJUST_HELP),
        option("no_progress", bool, False, "Hide progress bars.", ("--no-progress",)),
        *strategy_params(),
    ]
    command(app, "loop", _loop, params, "Evaluate → pairs from the base run's failures → DPO → evaluate the adapter → compare (resumable).")
