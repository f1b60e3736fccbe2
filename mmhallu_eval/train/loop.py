"""`mmhallu loop`: evaluate base → build pairs (mix from the base run's failures) → DPO → evaluate the adapter →
compare. Every stage is recorded in DIR/loop.json and skipped on a rerun when its inputs have not changed."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..files import atomic_write_json, atomic_write_jsonl, iter_jsonl, read_json
from ..rundir import now_iso
from ..runner import RunConfig, run
from ..task import TaskError
from .builders import ANNOTATION_STRATEGIES, DEFAULT_CAPTION_TEMPLATES, DEFAULT_SWAP_KINDS, caption_swap_pairs, contrast_pairs, finer_pairs, povid_pairs
from .dpo import TrainConfig, train_dpo
from .mix import mix_from_run
from .pairs import PairSet, drop_contaminated
from .sampled import own_caption_pairs, sample_captions
from ..annotations import load_graphs

#: what the loop builds pairs with: the annotation strategies and best-of-n on the base model's own captions
LOOP_STRATEGIES = (*ANNOTATION_STRATEGIES, "own_captions")


@dataclass
class LoopConfig:
    model: str
    train_annotations: str
    train_images: str
    tasks: list[str]
    out: Path
    task_args: dict[str, dict[str, str]] = field(default_factory=dict)
    strategies: list[str] = field(default_factory=lambda: ["finer", "povid"])
    limit: int | None = None
    batch_size: int | None = None
    max_new_tokens: int | None = None
    backend_args: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    neg_ratio: float = 0.5
    #: "sentence" or "short" (see builders.finer_pairs): the style the tuned model's benchmarks are answered in;
    #: contrast pairs use it too
    finer_answer_style: str = "sentence"
    #: a positive and a one-slot negative per chosen image and type instead of one of them (`neg_ratio`)
    finer_both_polarities: bool = False
    #: fixed pair-type weights (obj/attr/rel/wh) instead of the mix set from the base run's failures
    mix: dict[str, float] | None = None
    #: contrast pairs (strategy "contrast", builders.contrast_pairs): which objects count as small (for
    #: "caption_swap"'s swap_partner pairs too), how many co-occurring classes per small object
    contrast_small_quantile: float = 0.25
    contrast_partners: int = 1
    #: caption_swap pairs (builders.caption_swap_pairs): which swaps, in which caption templates
    caption_swap_kinds: list[str] = field(default_factory=lambda: list(DEFAULT_SWAP_KINDS))
    caption_templates: list[str] = field(default_factory=lambda: list(DEFAULT_CAPTION_TEMPLATES))
    #: POVID descriptions name the objects in "reading" or "annotation" order (builders.povid_pairs)
    povid_order: str = "annotation"
    #: own_captions pairs (train.sampled): captions sampled per training image from the base model, at this
    #: temperature; up to own_max_per_image pairs per image, each written own_repeat times (its weight in the mix);
    #: judged with the CHAIR parser and this synonyms file (None: the chair task's `synonyms` option, else COCO's)
    own_samples: int = 16
    own_temperature: float = 0.7
    own_max_per_image: int = 4
    own_repeat: int = 1
    own_synonyms: str | None = None
    seed: int = 0
    show_progress: bool = True


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class LoopState:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = read_json(path) if path.exists() else {"stages": {}}

    def done(self, stage: str, fingerprint: str, outputs: list[Path]) -> bool:
        s = self.data["stages"].get(stage)
        return bool(s and s.get("status") == "done" and s.get("fingerprint") == fingerprint and all(p.exists() for p in outputs))

    def record(self, stage: str, fingerprint: str, inputs: dict[str, Any], outputs: dict[str, Any], started: str, **extra: Any) -> None:
        self.data["stages"][stage] = {"status": "done", "fingerprint": fingerprint, "inputs": inputs, "outputs": outputs, "started": started, "finished": now_iso(), **extra}
        atomic_write_json(self.path, self.data)


def run_loop(cfg: LoopConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    from ..report.pages import compare_report

    unknown = [s for s in cfg.strategies if s not in LOOP_STRATEGIES]
    if unknown:
        raise TaskError(f"loop: unknown pair strategy {', '.join(unknown)}; the loop builds {', '.join(ANNOTATION_STRATEGIES)} from the training annotations "
                        "and own_captions from the base model's sampled captions "
                        "(HA-DPO pairs need a run on training images: `mmhallu pairs build --strategy hadpo`, then `mmhallu train dpo`)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state = LoopState(out / "loop.json")
    state.data["config"] = json.loads(json.dumps(cfg.__dict__, default=str))

    def evaluate(name: str, adapter: str | None) -> Path:
        run_dir = out / name
        inputs = {"model": cfg.model, "adapter": adapter, "tasks": cfg.tasks, "task_args": cfg.task_args, "limit": cfg.limit, "max_new_tokens": cfg.max_new_tokens}
        fp = _fingerprint({**inputs, "adapter_hash": _dir_hash(adapter) if adapter else None})
        if state.done(name, fp, [run_dir / t / "result.json" for t in cfg.tasks]):
            log(f"[loop] {name}: up to date, skipped")
            return run_dir
        started = now_iso()
        log(f"[loop] {name}: evaluating {cfg.model}{' + ' + adapter if adapter else ''} on {', '.join(cfg.tasks)}")
        run(RunConfig(
            model=cfg.model, tasks=cfg.tasks, out=run_dir, limit=cfg.limit, batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens,
            task_args=cfg.task_args, backend_args={**cfg.backend_args, "adapter": adapter}, resume=True, show_progress=cfg.show_progress,
        ))
        state.record(name, fp, inputs, {"run": str(run_dir)}, started)
        return run_dir

    base = evaluate("base", None)

    own_path = out / "own_captions.jsonl"
    if "own_captions" in cfg.strategies:
        synonyms = cfg.own_synonyms or cfg.task_args.get("chair", {}).get("synonyms")
        own_inputs = {"model": cfg.model, "annotations": cfg.train_annotations, "images": cfg.train_images, "samples": cfg.own_samples,
                      "temperature": cfg.own_temperature, "synonyms": synonyms, "max_new_tokens": cfg.max_new_tokens or 128, "seed": cfg.seed}
        fp = _fingerprint(own_inputs)
        if state.done("own_captions", fp, [own_path]):
            log("[loop] own_captions: up to date, skipped")
        else:
            started = now_iso()
            log(f"[loop] own_captions: sampling {cfg.own_samples} captions per training image at temperature {cfg.own_temperature}")
            rows = sample_captions(cfg.model, load_graphs(cfg.train_annotations), cfg.train_images, cfg.own_samples, cfg.own_temperature, cfg.seed, synonyms,
                                   backend_args=cfg.backend_args, batch_size=cfg.batch_size or 32, max_new_tokens=cfg.max_new_tokens or 128, log=log)
            atomic_write_jsonl(own_path, rows)
            bad = sum(1 for r in rows if r.get("hallucinated"))
            failed = sum(1 for r in rows if r.get("error"))
            log(f"[loop] own_captions: {len(rows)} captions, {bad} name an absent object, {failed} failed")
            state.record("own_captions", fp, own_inputs, {"captions": str(own_path), "n": len(rows), "hallucinating": bad, "failed": failed}, started)

    pairs_path = out / "pairs.jsonl"
    adaptive, evidence = mix_from_run(base)
    mix = dict(cfg.mix) if cfg.mix else adaptive
    if cfg.mix:
        evidence["mix_source"] = "fixed (LoopConfig.mix / --mix); the adaptive mix would be " + json.dumps(adaptive)
    else:
        evidence["mix_source"] = "adaptive (base run's failures)"
    inputs = {"annotations": cfg.train_annotations, "images": cfg.train_images, "strategies": cfg.strategies, "mix": mix, "neg_ratio": cfg.neg_ratio, "seed": cfg.seed}
    # non-default options only, so that older loop.json fingerprints stay valid
    if cfg.finer_answer_style != "sentence":
        inputs["finer_answer_style"] = cfg.finer_answer_style
    if cfg.finer_both_polarities:
        inputs["finer_both_polarities"] = True
    if "contrast" in cfg.strategies:
        inputs["contrast"] = {"small_quantile": cfg.contrast_small_quantile, "partners": cfg.contrast_partners}
    if "caption_swap" in cfg.strategies:
        inputs["caption_swap"] = {"kinds": cfg.caption_swap_kinds, "templates": cfg.caption_templates, "small_quantile": cfg.contrast_small_quantile}
    if "povid" in cfg.strategies and cfg.povid_order != "annotation":
        inputs["povid_order"] = cfg.povid_order
    if "own_captions" in cfg.strategies:
        inputs["own_captions"] = {"captions_hash": _file_hash(own_path), "max_per_image": cfg.own_max_per_image, "repeat": cfg.own_repeat}
    fp = _fingerprint(inputs)
    if state.done("pairs", fp, [pairs_path]):
        log("[loop] pairs: up to date, skipped")
    else:
        started = now_iso()
        graphs = load_graphs(cfg.train_annotations)
        pairs: list[dict[str, Any]] = []
        if "finer" in cfg.strategies:
            pairs += finer_pairs(graphs, cfg.train_images, mix, cfg.neg_ratio, cfg.seed, cfg.finer_answer_style, cfg.finer_both_polarities)
        if "povid" in cfg.strategies:
            pairs += povid_pairs(graphs, cfg.train_images, cfg.seed, order=cfg.povid_order)
        if "contrast" in cfg.strategies:
            pairs += contrast_pairs(graphs, cfg.train_images, cfg.contrast_small_quantile, cfg.contrast_partners, cfg.finer_answer_style)
        if "caption_swap" in cfg.strategies:
            pairs += caption_swap_pairs(graphs, cfg.train_images, cfg.caption_swap_kinds, cfg.caption_templates, cfg.contrast_small_quantile, cfg.seed)
        if "own_captions" in cfg.strategies:
            pairs += own_caption_pairs([row for _, row in iter_jsonl(own_path)], cfg.own_max_per_image, cfg.own_repeat, cfg.seed)
        pairs, dropped = drop_contaminated(pairs, cfg.tasks, cfg.task_args)
        PairSet(pairs, dropped, mix, {"mix_evidence": evidence, "strategies": cfg.strategies}).write(pairs_path)
        atomic_write_json(out / "mix.json", {"mix": mix, **evidence})
        log(f"[loop] pairs: {len(pairs)} pairs (mix {mix}; {dropped} dropped as evaluation images)")
        state.record("pairs", fp, inputs, {"pairs": str(pairs_path), "n_pairs": len(pairs), "dropped_contaminated": dropped}, started, mix=mix)

    adapter = out / "adapter"
    train_inputs = {"model": cfg.model, "pairs_hash": _file_hash(pairs_path), **cfg.train}
    fp = _fingerprint(train_inputs)
    if state.done("train", fp, [adapter / "adapter_config.json"]):
        log("[loop] train: up to date, skipped")
    else:
        started = now_iso()
        log("[loop] train: DPO (LoRA) with TRL")
        train_dpo(TrainConfig(model=cfg.model, pairs=str(pairs_path), out=str(adapter), **cfg.train), show_progress=cfg.show_progress)
        state.record("train", fp, train_inputs, {"adapter": str(adapter), "log": str(adapter / "train_log.jsonl")}, started)

    tuned = evaluate("tuned", str(adapter))

    started = now_iso()
    html, js = compare_report(base, tuned, out / "compare")
    state.record("compare", _fingerprint([str(base), str(tuned)]), {"base": str(base), "tuned": str(tuned)}, {"html": str(html), "json": str(js)}, started)
    log(f"[loop] compare: {html}")
    return state.data


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "missing"


def _dir_hash(path: str | None) -> str:
    if not path or not Path(path).is_dir():
        return "none"
    h = hashlib.sha256()
    for f in sorted(Path(path).glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
