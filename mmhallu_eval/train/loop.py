"""`mmhallu loop`: evaluate base → the chosen strategies' own stages (e.g. sampling the base model) → pairs (mix from
the base run's failures) → DPO → evaluate the adapter → compare. Each stage declares its inputs (the fingerprint)
and outputs; `run_loop` composes them, records them in DIR/loop.json, and skips a stage on a rerun when its
inputs have not changed, its outputs are there and the data it read is what it ran on (evaluations and pairs: the
evaluation data; the strategies' own stages, pairs and training: the training annotations and images)."""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import TaskError
from ..files import atomic_write_json, read_json
from ..options import as_strings
from ..outputs import folder_relation, refuse_foreign_folder
from ..report.scorecard import ADJUSTMENTS
from ..rundir import MANIFEST, now_iso
from ..runner import RunConfig, run, task_data_hashes
from .dpo import TrainConfig, check_chat_template, check_dpo_settings, dpo_arguments, train_dpo
from .mix import mix_from_run
from .pairs import PairSet, drop_contaminated
from .strategy import PairContext, build_pairs, get_strategy, strategy_options


@dataclass
class LoopConfig:
    model: str
    train_annotations: str
    train_images: str
    tasks: list[str]
    out: Path
    task_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    strategies: list[str] = field(default_factory=lambda: ["finer", "povid"])
    #: the strategies' options by name (each strategy takes the ones its options dataclass declares)
    pair_options: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    batch_size: int | None = None
    #: requests per generate call in the two evaluations (default: batch_size); greedy answers do not depend on it,
    #: while sampling own captions does, so the two are set apart
    eval_batch_size: int | None = None
    max_new_tokens: int | None = None
    backend_args: dict[str, Any] = field(default_factory=dict)
    #: evaluate the tuned model with the adapter merged into the weights (transformers backend; faster, answers can
    #: differ from the unmerged adapter's in floating-point rounding)
    merge_adapter: bool = False
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    #: fixed pair-type weights (obj/attr/rel/wh) instead of the mix set from the base run's failures
    mix: dict[str, float] | None = None
    seed: int = 0
    show_progress: bool = True
    #: (task, group) rows that lead the compare scorecard, e.g. the split where the hallucination is expected
    scorecard_first: list[tuple[str, str | None]] = field(default_factory=list)
    #: what the compare scorecard's verdicts' p is (`report.scorecard.ADJUSTMENTS`)
    adjust: str = "none"


#: the pairs file and the adapter folder in the loop's folder
PAIRS, ADAPTER = "pairs.jsonl", "adapter"


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Stage:
    """One step of the loop: `run()` returns the outputs recorded in loop.json; `files` must exist for a skip."""

    name: str
    inputs: dict[str, Any]
    files: list[Path]
    run: Callable[[], dict[str, Any]]
    #: given the outputs recorded when it last ran, why they are out of date although the inputs are the same
    #: (a data file changed in place), or None; asked only when the stage would otherwise be skipped
    stale: Callable[[dict[str, Any]], str | None] | None = None


class LoopState:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = read_json(path) if path.exists() else {"stages": {}}
        stages = self.data.get("stages") if isinstance(self.data, dict) else None
        if not isinstance(stages, dict) or not all(isinstance(v, dict) for v in stages.values()):
            raise TaskError(f"{path}: not a loop record (an object whose \"stages\" holds one object per stage); restore it, or give "
                            "--out a new folder")

    def execute(self, stage: Stage, log: Callable[[str], None]) -> dict[str, Any]:
        fp = _fingerprint(stage.inputs)
        known = self.data["stages"].get(stage.name)
        if known and known.get("status") == "done" and known.get("fingerprint") == fp and all(p.exists() for p in stage.files):
            reason = stage.stale(known.get("outputs") or {}) if stage.stale is not None else None
            if reason is None:
                log(f"[loop] {stage.name}: up to date, skipped")
                return known["outputs"]
            log(f"[loop] {stage.name}: {reason}; running it again")
        started = now_iso()
        outputs = stage.run()
        self.data["stages"][stage.name] = {"status": "done", "fingerprint": fp, "inputs": stage.inputs, "outputs": outputs, "started": started,
                                           "finished": now_iso()}
        atomic_write_json(self.path, self.data)
        return outputs


def run_loop(cfg: LoopConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    options = strategy_options(cfg.strategies, cfg.pair_options)  # every option checked before anything runs
    needs_run = [s for s in cfg.strategies if "run" in get_strategy(s).needs]
    if needs_run:
        raise TaskError(f"loop: {', '.join(needs_run)} read(s) a run on training images, which the loop does not make: build them with "
                        "`mmhallu pairs build --run RUN_DIR`, then `mmhallu train dpo`")
    check_dpo_settings(cfg.train)
    if cfg.adjust not in ADJUSTMENTS:
        raise TaskError(f"loop: adjust {cfg.adjust!r}: one of {', '.join(ADJUSTMENTS)}")
    out = Path(cfg.out)
    # its values checked now (ours, then TRL's), not after the base run
    dpo_arguments(TrainConfig(model=cfg.model, pairs=str(out / PAIRS), out=str(out / ADAPTER), **cfg.train))
    _check_trainable(cfg.model)
    check_loop_out(out, cfg.model, (cfg.train_images, cfg.train_annotations))
    out.mkdir(parents=True, exist_ok=True)
    state = LoopState(out / "loop.json")
    state.data["config"] = json.loads(json.dumps(cfg.__dict__, default=str))
    atomic_write_json(state.path, state.data)  # the folder is a loop's from now on: a stop in the first stage leaves it resumable
    ctx = PairContext(annotations=cfg.train_annotations, images=cfg.train_images, seed=cfg.seed, model=cfg.model, backend_args=cfg.backend_args,
                      batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens, tasks=cfg.tasks, task_args=cfg.task_args, work_dir=out, log=log)

    data_now = functools.cache(lambda: task_data_hashes(cfg.tasks, cfg.task_args, cfg.limit))  # read only to check a finished stage
    training_now = functools.cache(lambda: training_data_identity(cfg.train_annotations, cfg.train_images))
    base = Path(state.execute(_evaluate_stage(cfg, "base", None, data_now, log), log)["run"])
    for name in cfg.strategies:
        strategy = get_strategy(name)
        if strategy.prepare is not None:
            inputs = {"model": cfg.model, "annotations": cfg.train_annotations, "images": cfg.train_images, "seed": cfg.seed, "tasks": cfg.tasks,
                      "task_args": cfg.task_args, "max_new_tokens": cfg.max_new_tokens, "options": as_strings(options[name])}
            state.execute(Stage(name, inputs, [out / f"{name}.jsonl"],
                                lambda s=strategy, o=options[name]: {"training_data": training_now(), **s.prepare(ctx, o)},
                                stale=lambda known: _training_changed(known, training_now)), log)

    adaptive, evidence = mix_from_run(base)
    ctx.mix = dict(cfg.mix) if cfg.mix else adaptive
    evidence["mix_source"] = ("fixed (LoopConfig.mix / --mix); the adaptive mix would be " + json.dumps(adaptive)) if cfg.mix else "adaptive (base run's failures)"
    state.execute(_pairs_stage(cfg, ctx, options, evidence, base, training_now, log), log)
    state.execute(_train_stage(cfg, training_now, log), log)
    tuned = Path(state.execute(_evaluate_stage(cfg, "tuned", str(out / ADAPTER), data_now, log), log)["run"])
    state.data["stages"].pop("compare", None)  # always rewritten: it reads the two runs
    state.execute(_compare_stage(cfg, base, tuned, log), log)
    return state.data


def _check_trainable(model: str) -> None:
    """A model TRL cannot tune (no chat template) is refused now, not after the base evaluation; a model whose
    processor does not load is left to that evaluation, which says why."""
    from ..backends.base import BackendError
    from ..backends.hf_processor import load_processor

    try:
        processor = load_processor(model)
    except BackendError:
        return
    check_chat_template(processor, model)


def check_loop_out(out: Path, model: str, training_data: tuple[str, ...] = ()) -> None:
    """A new folder or an earlier loop's (which the loop continues): not a file, not the model's folder or a folder
    of the training data (or inside one, or holding one), not a folder of other files — the loop writes runs, pairs,
    images of its own and an adapter there."""
    if Path(model).expanduser().is_dir() and folder_relation(out, model):
        raise TaskError(f"--out {out} and the model's folder {model} overlap: the loop writes runs, pairs and an adapter there; give --out a new folder")
    for data in training_data:
        if Path(data).expanduser().exists() and folder_relation(out, data):
            raise TaskError(f"--out {out} and the training data {data} overlap: the loop writes runs, pairs and an adapter there; "
                            "give --out a folder outside the training data")
    refuse_foreign_folder(out, ["loop.json"], "a loop's", "an earlier loop's folder to continue it", note="; no loop.json")


def _evaluated_data(run_dir: Path) -> dict[str, Any]:
    """The `samples_hash` of each task a run folder's manifest records (empty when it cannot be read)."""
    try:
        tasks = read_json(run_dir / MANIFEST).get("tasks", {})
        return {name: t.get("samples_hash") for name, t in tasks.items()}
    except (TaskError, OSError, AttributeError):
        return {}


def _changed(recorded: dict[str, Any], now: dict[str, str]) -> str | None:
    changed = [t for t in now if recorded.get(t) != now[t]]
    return f"the data of {', '.join(changed)} changed since it ran" if changed else None


def training_data_identity(annotations: str, images: str) -> dict[str, str]:
    """What the training data is now: the annotations file by its bytes, and the images folder by each file's path,
    size and modification time (reading every image of a COCO-size folder on each rerun would cost minutes)."""
    h = hashlib.sha256()
    root = Path(images).expanduser()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            path = os.path.join(folder, f)
            try:
                st = os.stat(path)
                seen = f"{st.st_size}\0{st.st_mtime_ns}"
            except OSError:  # a link to nothing: the pairs that name it are refused or warned about where they are built
                seen = "unreadable"
            h.update(f"{os.path.relpath(path, root)}\0{seen}\n".encode())
    return {"annotations": _file_hash(Path(annotations).expanduser()), "images": h.hexdigest()[:16] if root.is_dir() else "missing"}


def _training_changed(known: dict[str, Any], now: Callable[[], dict[str, str]], read: tuple[str, ...] = ("annotations", "images")) -> str | None:
    """Why a stage that read the training data (`read`: which of it) is out of date, or None (also for a record
    made before the loop recorded that data's identity)."""
    recorded = known.get("training_data")
    if not isinstance(recorded, dict):
        return None
    changed = [k for k in read if recorded.get(k) != now()[k]]
    return f"the training {' and '.join(changed)} changed since it ran" if changed else None


def _evaluate_stage(cfg: LoopConfig, name: str, adapter: str | None, data_now: Callable[[], dict[str, str]],
                    log: Callable[[str], None]) -> Stage:
    """The tasks evaluated on the model (`adapter`: with the tuned LoRA adapter) into DIR/NAME, resumable. Its
    inputs name the data by path; a finished stage is run again (from the response cache) when a task's data now
    differs from what its run recorded."""
    out = Path(cfg.out)
    inputs = {"model": cfg.model, "adapter": adapter, "tasks": cfg.tasks, "task_args": cfg.task_args, "limit": cfg.limit,
              "max_new_tokens": cfg.max_new_tokens, "adapter_hash": _dir_hash(adapter) if adapter else None}
    backend_args = {**cfg.backend_args, "adapter": adapter}
    if adapter and cfg.merge_adapter:
        inputs["merge_adapter"] = backend_args["merge_adapter"] = True

    def go() -> dict[str, Any]:
        log(f"[loop] {name}: evaluating {cfg.model}{' + ' + adapter if adapter else ''} on {', '.join(cfg.tasks)}")
        run(RunConfig(model=cfg.model, tasks=cfg.tasks, out=out / name, limit=cfg.limit, batch_size=cfg.eval_batch_size or cfg.batch_size,
                      max_new_tokens=cfg.max_new_tokens,
                      task_args=cfg.task_args, backend_args=backend_args, resume=True, show_progress=cfg.show_progress))
        return {"run": str(out / name)}

    return Stage(name, inputs, [out / name / t / "result.json" for t in cfg.tasks], go,
                 stale=lambda _: _changed(_evaluated_data(out / name), data_now()))


def _pairs_stage(cfg: LoopConfig, ctx: PairContext, options: dict[str, Any], evidence: dict[str, Any], base: Path,
                 training_now: Callable[[], dict[str, str]], log: Callable[[str], None]) -> Stage:
    """The strategies' pairs at `ctx.mix`, evaluation images left out, into DIR/pairs.jsonl (and the mix, with its
    evidence, into DIR/mix.json). Built again when the training data changed, or when the evaluation data (as the
    base run, checked just before, records it) is not the data whose images were left out."""
    out = Path(cfg.out)
    pairs_path = out / PAIRS

    def make_pairs() -> dict[str, Any]:
        read = training_now()
        pairs = build_pairs(cfg.strategies, ctx, options)
        pairs, dropped = drop_contaminated(pairs, cfg.tasks, cfg.task_args)
        PairSet(pairs, dropped, ctx.mix, {"mix_evidence": evidence, "strategies": cfg.strategies}).write(pairs_path)
        atomic_write_json(out / "mix.json", {"mix": ctx.mix, **evidence})
        log(f"[loop] pairs: {len(pairs)} pairs (mix {ctx.mix}; {dropped} dropped as evaluation images)")
        return {"pairs": str(pairs_path), "n_pairs": len(pairs), "dropped_contaminated": dropped, "mix": ctx.mix,
                "evaluation_data": _evaluated_data(base), "training_data": read}

    def stale(known: dict[str, Any]) -> str | None:
        if _changed(known.get("evaluation_data") or {}, _evaluated_data(base)):
            return "the evaluation data whose images it leaves out changed since it ran"
        return _training_changed(known, training_now)

    prepared = {n: _file_hash(out / f"{n}.jsonl") for n in cfg.strategies if get_strategy(n).prepare is not None}
    inputs = {"annotations": cfg.train_annotations, "images": cfg.train_images, "strategies": cfg.strategies, "mix": ctx.mix, "seed": cfg.seed,
              "options": {n: as_strings(o) for n, o in options.items()}, "prepared": prepared}
    return Stage("pairs", inputs, [pairs_path], make_pairs, stale=stale)


def _train_stage(cfg: LoopConfig, training_now: Callable[[], dict[str, str]], log: Callable[[str], None]) -> Stage:
    """DPO with a LoRA adapter on DIR/pairs.jsonl, into DIR/adapter; trained again when the training images changed
    (the pairs name them by path, so the pairs file can be the same)."""
    pairs_path, adapter = Path(cfg.out) / PAIRS, Path(cfg.out) / ADAPTER

    def train() -> dict[str, Any]:
        log("[loop] train: DPO (LoRA) with TRL")
        read = training_now()
        train_dpo(TrainConfig(model=cfg.model, pairs=str(pairs_path), out=str(adapter), **cfg.train), show_progress=cfg.show_progress)
        return {"adapter": str(adapter), "log": str(adapter / "train_log.jsonl"), "training_data": read}

    return Stage("train", {"model": cfg.model, "pairs_hash": _file_hash(pairs_path), **cfg.train}, [adapter / "adapter_config.json"], train,
                 stale=lambda known: _training_changed(known, training_now, ("images",)))


def _compare_stage(cfg: LoopConfig, base: Path, tuned: Path, log: Callable[[str], None]) -> Stage:
    from ..report.pages import compare_report

    def compare() -> dict[str, Any]:
        html, js = compare_report(base, tuned, Path(cfg.out) / "compare", first=cfg.scorecard_first, adjust=cfg.adjust)
        log(f"[loop] compare: {html}")
        return {"html": str(html), "json": str(js)}

    return Stage("compare", {"base": str(base), "tuned": str(tuned), "adjust": cfg.adjust}, [], compare)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "missing"


def _dir_hash(path: str | None) -> str:
    if not path or not Path(path).is_dir():
        return "none"
    h = hashlib.sha256()
    for f in sorted(Path(path).glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
