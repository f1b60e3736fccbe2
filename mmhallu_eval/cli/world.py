"""Offline helpers: the shapes world, tiny models and fixtures, benchmarks built from annotations, the demo, NLTK
set-up and vLLM's weight layout."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .common import fail, group, user_errors

world_app = group(no_args_is_help=True, help="Build offline models and fixtures (tests, the embedded default).")
build_app = group(no_args_is_help=True, help="Build benchmarks from COCO-format annotations or scene graphs.")
app = group()


@world_app.command("build")
def world_build_cmd(
    out: Path = typer.Option(..., help="Folder for images/, COCO-style annotations, scene graphs, synonyms.txt."),
    seed: int = typer.Option(0, help="The world's seed: the same seed draws the same scenes."),
    train: int = typer.Option(400, min=1, help="Training images."),
    test: int = typer.Option(200, min=1, help="Test images."),
) -> None:
    """Generate the shapes world: scenes with full ground truth in standard formats (deterministic per seed)."""
    from ..outputs import refuse_foreign_folder
    from ..world.shapes import build_world

    try:
        refuse_foreign_folder(out, ["world.json"], "a shapes world's", "an earlier world build's folder to build it again")
        build_world(out, seed=seed, n_train=train, n_test=test)
    except user_errors() as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{out}: cannot write the world there ({exc.strerror or exc})")
    typer.echo(f"wrote the shapes world to {out} ({train} train, {test} test images)")


@build_app.command("pope")
def build_pope_cmd(
    coco_annotations: Path = typer.Option(..., help="COCO instances JSON (or a folder with instances_<split>.json)."),
    out: Path = typer.Option(..., help="Folder for <name>_pope_{random,popular,adversarial}.json."),
    split: str = typer.Option("val2014", help="Which instances_<split>.json when a folder is given."),
    name: str = typer.Option("coco", help="Dataset name in the file names."),
    n_images: int = typer.Option(500, min=1, help="Images sampled (POPE's files: 500)."),
    per_image: int = typer.Option(3, min=1, help="Positive (and negative) questions per image."),
    min_objects: int = typer.Option(3, min=1, help="Only images with at least this many distinct objects."),
    seed: int = typer.Option(0, help="Seed of the image and object sampling: the same seed writes the same files."),
) -> None:
    """POPE's own sampling: per image 3 present and 3 absent objects, negatives random/popular/adversarial."""
    from ..benchmarks.pope import build_pope

    instances = coco_annotations / f"instances_{split}.json" if coco_annotations.is_dir() else coco_annotations
    if not instances.is_file():
        fail(f"{instances}: COCO instances file not found")
    try:
        paths = build_pope(instances, out, name, n_images, per_image, min_objects, seed)
    except user_errors() as exc:
        fail(str(exc))
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


def _annotations_arg(path: Path, split: str) -> Path:
    if path.is_dir():
        for candidate in (path / f"scene_graph_{split}.json", path / f"instances_{split}.json"):
            if candidate.is_file():
                return candidate
        fail(f"{path}: no scene_graph_{split}.json or instances_{split}.json")
    return path


#: the options the annotation-built benchmarks share
_ANNOTATIONS = typer.Option(..., help="Scene-graph JSON or COCO instances JSON, or a folder holding scene_graph_<split>.json or instances_<split>.json.")
_SPLIT = typer.Option("test", help="Which file of a folder given as --annotations.")
_SEED = typer.Option(0, help="Seed of the question sampling: the same seed writes the same files.")


@build_app.command("mme")
def build_mme_cmd(annotations: Path = _ANNOTATIONS, out: Path = typer.Option(..., help="Folder for the <subtask>.txt lists."),
                  split: str = _SPLIT, seed: int = _SEED) -> None:
    """MME-style yes/no pairs (existence, count, position, color) as flat <subtask>.txt lists."""
    from ..benchmarks.qa import build_mme

    try:
        paths = build_mme(_annotations_arg(annotations, split), out, seed)
    except user_errors() as exc:
        fail(str(exc))
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@build_app.command("finer")
def build_finer_cmd(annotations: Path = _ANNOTATIONS, out: Path = typer.Option(..., help="Folder for the FINER question files."),
                    split: str = _SPLIT, seed: int = _SEED,
                    n_images: Optional[int] = typer.Option(None, min=1, help="Ask about the first N images only (default: every image); distractors still come from all of them.")) -> None:
    """FINER-style 5-way MCQ pairs (positive + one-slot negative) for multi_obj, multi_attr, multi_rel, wh."""
    from ..benchmarks.qa import build_finer

    try:
        paths = build_finer(_annotations_arg(annotations, split), out, seed, n_images)
    except user_errors() as exc:
        fail(str(exc))
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


@build_app.command("mmhal")
def build_mmhal_cmd(annotations: Path = _ANNOTATIONS, out: Path = typer.Option(..., help="JSON file (the MMHal template format), or a folder (existing, or a name without an extension) to write response_template.json in."),
                    split: str = _SPLIT, n_items: int = typer.Option(96, min=1, help="Questions written (MMHal-Bench has 96)."), seed: int = _SEED) -> None:
    """MMHal-style open questions with image_content, in the response_template.json format."""
    from ..benchmarks.qa import build_mmhal
    from ..outputs import file_in

    try:
        path = build_mmhal(_annotations_arg(annotations, split), file_in(out, "response_template.json"), n_items, seed)
    except user_errors() as exc:
        fail(str(exc))
    typer.echo(f"wrote {path}")


def _family_names() -> list[str]:
    from ..world.families import FAMILIES

    return sorted(FAMILIES)


@world_app.command("tiny-model")
def tiny_model_cmd(
    out: Path = typer.Option(..., help="A new or empty folder for the model and processor, or an earlier tiny model's folder to build it again."),
    arch: str = typer.Option("llava", help="llava or idefics3 (ChatML test models); for a published family's layout, give --family instead."),
    family: Optional[str] = typer.Option(None, help="A published family's layout and chat template: " + ", ".join(_family_names()) + "."),
    seed: int = typer.Option(0, help="Seed of the random weights."),
) -> None:
    """Build a tiny random-weight VLM with a locally trained tokenizer (offline, seconds)."""
    from ..world.model_folder import build_model_folder

    try:
        build_model_folder(out, arch, family, seed)
    except user_errors() as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{out}: cannot write the model there ({exc.strerror or exc})")
    typer.echo(f"wrote {family or arch} tiny model to {out}")


@world_app.command("pope-fixture")
def pope_fixture_cmd(
    out: Path = typer.Option(..., help="Folder for images/ and *_pope_<split>.json."),
    n_images: int = typer.Option(8, min=1, help="Images drawn (1–3 shapes each; per split as many yes as no questions)."),
    seed: int = typer.Option(0, help="Seed of the drawn scenes."),
) -> None:
    """Generate shape images and POPE question files for them."""
    from ..outputs import refuse_foreign_folder
    from ..world.fixtures import build_pope_fixture

    try:
        refuse_foreign_folder(out, ["shapes_pope_random.json"], "a POPE fixture's", "an earlier fixture's folder to build it again")
        build_pope_fixture(out, n_images=n_images, seed=seed)
    except user_errors() as exc:
        fail(str(exc))
    typer.echo(f"wrote POPE fixture to {out}")


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("reports/demo"), help="Folder for the world, the runs, the adapter and the reports."),
    quick: bool = typer.Option(False, help="A small world and short training: checks the pipeline in about a minute."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """The embedded default, offline on a CPU: shapes world → demo VLM → POPE/CHAIR/MME/FINER → DPO pairs →
    DPO (LoRA) → evaluate again → compare report."""
    from ..demo import DemoSettings, run_demo
    from ..world.demo_model import DemoTraining

    quick_training = DemoTraining(language_steps=20, language_scenes=100, existence_steps=10, vision_steps=10, joint_steps=10,
                                  caption_language_steps=10, caption_scenes=50, caption_joint_steps=10)
    settings = DemoSettings()
    if quick:
        settings = DemoSettings(n_train=24, n_test=16, training=quick_training, dpo_batch=4, dpo_max_steps=6,
                                pair_options={**settings.pair_options, "own_samples": 4})
    try:
        state = run_demo(out, settings, log=typer.echo, show_progress=not no_progress)
    except user_errors() as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted: rerun the same command to continue; what is built and the loop's finished stages are kept and skipped", code=130)
    from ..demo import LIMITS
    from ..report.scorecard import format_scorecard

    compare = json.loads(Path(state["stages"]["compare"]["outputs"]["json"]).read_text())
    typer.echo("\nScorecard (base → after DPO; the designed hallucination first: POPE adversarial, CHAIR):")
    typer.echo(format_scorecard(compare["scorecard"]))
    typer.echo(LIMITS)
    typer.echo(f"compare report: {state['stages']['compare']['outputs']['html']}")


@app.command("setup")
def setup_cmd(what: str = typer.Argument(..., help="nltk: download the NLTK resources CHAIR needs.")) -> None:
    """Download optional resources (needs internet)."""
    if what != "nltk":
        fail(f"unknown setup target {what!r}; available: nltk")
    from ..nltk_resources import download_nltk_resources, missing_nltk_resources

    downloaded = download_nltk_resources()
    missing = missing_nltk_resources()
    if missing:
        fail(f"could not download NLTK resources {', '.join(missing)}; set NLTK_DATA to a folder that has them")
    if not downloaded:
        fail("could not download the NLTK resources (no connection to NLTK's server?); the parts scoring reads ship with "
             "mmhallu-eval, so CHAIR and AMBER score without them")
    typer.echo("NLTK resources ready")


@app.command("vllm-layout")
def vllm_layout_cmd(
    model: Path = typer.Argument(..., help="A local model folder."),
    fix: bool = typer.Option(False, "--fix", help="Put the weights into the published layout in place (the safetensors files are rewritten)."),
) -> None:
    """Check a model folder for weights vLLM cannot load as transformers 5 saves them (the CLIP or SigLIP tower of a
    LLaVA, LLaVA-NeXT, LLaVA-OneVision, Gemma 3 or PaliGemma model: its names; Qwen3-VL-MoE's fused experts: their
    shapes); --fix puts them into the published layout, which transformers loads too."""
    from ..backends.vllm_layout import publish_weights, unpublished_weights

    if not (model / "config.json").is_file():
        fail(f"{model} is not a model folder (no config.json)")
    try:
        found = unpublished_weights(model)
        if not found:
            typer.echo(f"{model}: nothing to change; vLLM can load its weights as saved")
            return
        renames, transposes = sum(not u.transpose for u in found), sum(u.transpose for u in found)
        what = " and ".join(part for part in (f"{renames} to rename" if renames else "", f"{transposes} to transpose" if transposes else "") if part)
        if not fix:
            typer.echo(f"{model}: {len(found)} weights vLLM cannot load as saved ({what}; e.g. {found[0].describe()}); "
                       "rerun with --fix to put them into the published layout in place")
            raise typer.Exit(1)
        changed = publish_weights(model)
    except user_errors() as exc:
        fail(str(exc))
    typer.echo(f"{model}: {changed} weights put into the published layout ({what})")
