"""`mmhallu demo`: the whole loop on the shapes world, offline on a CPU — build the world, load the demo model,
evaluate POPE / CHAIR / MME-style / FINER-style / MMHal-style (scene-graph oracle judge) on the test split, build FINER, contrast and
caption-swap pairs from the train split and best-of-n pairs from the model's own captions of it,
DPO (LoRA), evaluate again, and write the compare report."""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .benchmarks.pope import build_pope
from .benchmarks.qa import build_finer, build_mme, build_mmhal
from .errors import TaskError
from .files import atomic_write_json, read_json
from .nltk_resources import download_nltk_resources, missing_nltk_resources
from .quiet import hide_library_progress_bars
from .options import fields_of
from .train.loop import LoopConfig, run_loop
from .train.strategy import get_strategy
from .world.demo_model import SHIPPED_MODEL, DemoTraining, build_demo_model
from .world.shapes import build_world, world_params

DEMO_TASKS = ["pope", "mme", "finer_comprecap", "mmhal", "chair"]


#: the scorecard's (task, split) scopes where the demo model's hallucination is designed to show: they lead it
DESIGNED_SCOPES: tuple[tuple[str, str | None], ...] = (("pope", "adversarial"), ("chair", None))


@dataclass
class DemoSettings:
    seed: int = 0
    n_train: int = 400
    #: 1,000 test images: CHAIR captions every one, and with 500 a 20% fall of CHAIR_i was not always significant
    #: (docs/demo.md); the shipped model trains on the train split only, drawn first
    n_test: int = 1000
    #: FINER-style questions on the first 500 test images (POPE also asks about 500): the demo model answers that
    #: 5-way format near chance before and after DPO, so its rows check the pipeline, and on all 1,000 images FINER was
    #: a third of the demo's time (docs/demo.md); None asks about every test image
    finer_images: int | None = 500
    training: DemoTraining = field(default_factory=DemoTraining)
    dpo_epochs: float = 1.0
    dpo_lr: float = 5e-5
    dpo_beta: float = 0.1
    dpo_batch: int = 8
    dpo_max_steps: int = 300
    #: TRL's default recomputes activations in the backward pass to save memory on large models; the demo model is
    #: tiny, and without it DPO takes 48.6 instead of 62.6 s on 2 cores, the adapter byte-identical
    dpo_gradient_checkpointing: bool = False
    #: requests per generate call in the evaluations: the tiny model's CPU throughput at 32 is ~2× that at 8, with the
    #: same greedy answers
    eval_batch_size: int = 32
    #: the tuned evaluation runs the adapter merged into the weights (a third faster on FINER's long prompts; the
    #: scorecard is the same as with the unmerged adapter, docs/demo.md)
    merge_adapter: bool = True
    #: TRL loss types (summed, `dpo_loss_weights`): APO-zero raises the chosen answer's likelihood and lowers the
    #: rejected one's, for pairs whose chosen side is ground truth; with TRL's sigmoid DPO both fell and the demo
    #: model's captions collapsed (docs/demo.md)
    dpo_loss: tuple[str, ...] = ("apo_zero", "sft")
    #: a little SFT on the chosen answers keeps the caption-reading model's captions where they were while the
    #: pairs move its yes/no answers (docs/demo.md)
    dpo_loss_weights: tuple[float, ...] | None = (1.0, 0.2)
    #: FINER short answers for POPE-style questions, contrast pairs for the partners of small objects, caption
    #: pairs with one class swapped in place, in the two caption templates the demo model was trained on, and
    #: best-of-n pairs of the model's own sampled captions (docs/demo.md: POVID's injected objects did not help the
    #: caption-reading model; own_captions is what lowers CHAIR_i)
    pair_strategies: tuple[str, ...] = ("finer", "contrast", "caption_swap", "own_captions")
    #: the strategies' options (their declarations in train/strategies): FINER and contrast pairs in the demo model's
    #: own answer style (one word after the short-answer prompt), both polarities; the demo model's two caption
    #: templates; 16 sampled captions per training image, each own_captions pair written twice (its weight against
    #: the ~2,300 annotation pairs)
    pair_options: dict[str, Any] = field(default_factory=lambda: {
        "answer_style": "short", "both_polarities": True,
        "caption_template": ("A picture with {objects}.", "There is {names} in this image."), "own_samples": 16, "own_repeat": 2,
    })
    #: fixed pair-type weights (None: set from the base run's failures). Fixed for the demo because the adaptive
    #: mix reads the FINER-style MCQ, where the demo model is at chance for every type, and then weights colour and
    #: position yes/no pairs the model cannot answer; those shifted its yes/no prior (docs/demo.md)
    pair_mix: dict[str, float] | None = field(default_factory=lambda: {"obj": 1.0, "attr": 0.2, "rel": 0.2, "wh": 0.2})
    limit: int | None = None


def _shipped_matches(settings: DemoSettings) -> bool:
    """The package ships the demo model trained by scripts/train_demo_model.py for the default world. Training
    reads only the train split, which the world generator draws before the test split, so the test split's size
    does not decide whether the shipped model fits."""
    info_file = SHIPPED_MODEL / "demo_model.json"
    if not (SHIPPED_MODEL / "model.safetensors").exists() or not info_file.exists():
        return False
    info = json.loads(info_file.read_text())
    return (info.get("seed"), info.get("n_train"), info.get("training")) == (settings.seed, settings.n_train, asdict(settings.training))


def _model_for(world: Path, settings: DemoSettings, cache: Path, log: Callable[[str], None]) -> Path:
    """The shipped demo model when the settings are those it was trained with; otherwise one trained on first use
    (seeded) and cached beside the world."""
    if _shipped_matches(settings):
        log(f"using the shipped demo model ({SHIPPED_MODEL}; rebuild it with scripts/train_demo_model.py)")
        return SHIPPED_MODEL
    settings_id = hashlib.sha256(json.dumps(asdict(settings.training), sort_keys=True).encode()).hexdigest()[:10]
    model = cache / f"demo-model-s{settings.seed}-n{settings.n_train}-{settings_id}"
    if not (model / "model.safetensors").exists():
        log(f"training a demo model for this world (cached in {model})")
        build_demo_model(world, model, seed=settings.seed, training=settings.training, log=log)
        info = json.loads((model / "demo_model.json").read_text())
        info.update(n_train=settings.n_train, n_test=settings.n_test)
        (model / "demo_model.json").write_text(json.dumps(info, indent=1))
    return model


def prepare(out: Path, settings: DemoSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """World, benchmarks and model (each cached in OUT/assets)."""
    assets = out / "assets"
    world = assets / "world"
    bench = assets / "benchmarks"
    wanted = world_params(settings.seed, settings.n_train, settings.n_test)
    if not (world / "world.json").exists() or json.loads((world / "world.json").read_text()) != wanted:
        for stale in (world, bench):
            if stale.exists():
                shutil.rmtree(stale)
        log(f"building the shapes world ({settings.n_train} train / {settings.n_test} test images)")
        build_world(world, seed=settings.seed, n_train=settings.n_train, n_test=settings.n_test)
    # what the benchmarks are built with, recorded in done.json: a folder built with other settings is built again
    built = {"seed": settings.seed, "pope": {"n_images": 500, "per_image": 3, "min_objects": 3}, "finer": {"n_images": settings.finer_images},
             "mmhal": {"n_items": 96}}
    done = bench / "done.json"
    if done.exists() and read_json(done) != built:
        log("building the benchmarks again: this folder's were built with other settings")
        shutil.rmtree(bench)
    if not done.exists():
        log("building POPE, MME-style, FINER-style and MMHal-style benchmarks on the test split")
        build_pope(world / "instances_test.json", bench / "pope", name="shapes", seed=settings.seed, **built["pope"])
        build_mme(world / "scene_graph_test.json", bench / "mme", seed=settings.seed)
        build_finer(world / "scene_graph_test.json", bench / "finer", seed=settings.seed, **built["finer"])
        build_mmhal(world / "scene_graph_test.json", bench / "mmhal.json", seed=settings.seed, **built["mmhal"])
        test_ids = [img["id"] for img in json.loads((world / "instances_test.json").read_text())["images"]]
        atomic_write_json(bench / "chair_image_ids.json", test_ids)
        atomic_write_json(done, built)
    model = _model_for(world, settings, assets, log)
    images = str(world / "images")
    task_args = {
        "pope": {"data": str(bench / "pope"), "images": images},
        "mme": {"data": str(bench / "mme"), "images": images},
        "finer_comprecap": {"data": str(bench / "finer"), "images": images},
        # the world's scene graphs are the complete truth, so MMHal-style answers are rated by the rule-based oracle
        "mmhal": {"data": str(bench / "mmhal.json"), "images": images, "judge_backend": "scene-graph-oracle", "max_new_tokens": "64",
                  "judge_scene_graph": str(world / "scene_graph_test.json"), "judge_synonyms": str(world / "synonyms.txt")},
        "chair": {"coco_annotations": str(world), "images": images, "image_ids": str(bench / "chair_image_ids.json"), "synonyms": str(world / "synonyms.txt")},
    }
    return {"world": world, "model": model, "task_args": task_args}


def _nltk_ready(log: Callable[[str], None]) -> bool:
    """CHAIR needs NLTK data: use it when present, try to download it, else run the demo without CHAIR."""
    if not missing_nltk_resources():
        return True
    log("downloading the NLTK data CHAIR needs (punkt_tab, averaged_perceptron_tagger_eng, wordnet)")
    if download_nltk_resources() and not missing_nltk_resources():
        return True
    log("NLTK data unavailable (offline?): the demo runs without CHAIR; set NLTK_DATA or run `mmhallu setup nltk`")
    return False


def _declared(strategies: list[str]) -> set[str]:
    return {f.name for s in strategies for f, _ in fields_of(get_strategy(s).options)}


#: said after the demo's scorecard: the rows a reader should not read as results
LIMITS = ("FINER-style MCQ: the demo model answers the 5-way format near chance before and after DPO (it never learned "
          "it); MMHal-style open answers do not move. Those rows check that the pipeline runs, not the method.")


#: what the demo writes in its folder: the built world, benchmarks and model, and the loop's runs and reports
DEMO_ENTRIES = ("assets", "loop")


def check_demo_out(out: Path) -> None:
    """A new folder or an earlier demo's: the demo rebuilds (deletes) a stale world under assets/, so a folder
    holding anything else is refused before anything is written."""
    if out.is_file():
        raise TaskError(f"--out {out} is a file; give --out a folder")  # the loop's folder check says the same
    foreign = sorted(c.name for c in out.iterdir() if c.name not in DEMO_ENTRIES) if out.is_dir() else []
    if foreign:
        raise TaskError(f"--out {out} holds files that are not the demo's ({', '.join(foreign[:3])}{', …' if len(foreign) > 3 else ''}); "
                        "give --out a new folder, or an earlier demo's folder to continue it")


def run_demo(out: str | Path, settings: DemoSettings | None = None, log: Callable[[str], None] = print, show_progress: bool = True) -> dict[str, Any]:
    settings = settings or DemoSettings()
    out = Path(out)
    check_demo_out(out)
    if not show_progress:
        hide_library_progress_bars()  # the demo model's save bar too, before the loop's own runs
    ready = prepare(out, settings, log)
    with_chair = _nltk_ready(log)
    tasks = DEMO_TASKS if with_chair else [t for t in DEMO_TASKS if t != "chair"]
    judged = [s for s in settings.pair_strategies if "model" in get_strategy(s).needs]  # judged with the captioning task
    strategies = [s for s in settings.pair_strategies if with_chair or s not in judged]
    if len(strategies) < len(settings.pair_strategies):
        log("without NLTK data the sampled-caption pairs cannot be judged either: the demo builds " + ", ".join(strategies))
    cfg = LoopConfig(
        model=str(ready["model"]), train_annotations=str(ready["world"] / "scene_graph_train.json"), train_images=str(ready["world"] / "images"),
        tasks=tasks, out=out / "loop", eval_batch_size=settings.eval_batch_size, task_args={t: a for t, a in ready["task_args"].items() if t in tasks}, strategies=strategies, limit=settings.limit,
        max_new_tokens=None, backend_args={"device": "cpu", "dtype": "float32"}, merge_adapter=settings.merge_adapter,
        train={"epochs": settings.dpo_epochs, "learning_rate": settings.dpo_lr, "beta": settings.dpo_beta, "batch_size": settings.dpo_batch, "loss_type": list(settings.dpo_loss),
               "loss_weights": list(settings.dpo_loss_weights) if settings.dpo_loss_weights else None,
               "max_steps": settings.dpo_max_steps, "extra": {"gradient_checkpointing": settings.dpo_gradient_checkpointing}},
        seed=settings.seed, show_progress=show_progress, mix=settings.pair_mix,
        pair_options={k: v for k, v in settings.pair_options.items() if k in _declared(strategies)},
        scorecard_first=list(DESIGNED_SCOPES),
    )
    return run_loop(cfg, log=log)
