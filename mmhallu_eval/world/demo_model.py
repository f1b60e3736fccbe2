"""The demo VLM: a small LLaVA-architecture model trained from scratch on the shapes world's *train* split
(captions, yes/no, open colour and multiple-choice questions), on CPU, with a fixed seed, in the stages of
demo_training.py. The package ships the weights for the default world (`SHIPPED_MODEL`).

Where its hallucinations come from, by design and the way real VLMs get theirs: tiny shapes are barely visible
(their image tokens lean to the right class but also carry the look-alike partner), the training answers come from
a noisy annotator that also reports the partner of every tiny shape, and negatives are drawn uniformly, so an
absent partner is rarely asked about. Its captions name the objects in reading order (the caption stages), so
they follow the image and their errors are misreadings of small shapes. Status and numbers: docs/demo.md.
"""
from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..annotations import OPPOSITE, load_graphs, reading_order, vocabulary
from ..benchmarks.qa import _mcq
from ..prompts import DESCRIBE, SHORT_ANSWER, YES_NO
from .demo_training import Example
from .shapes import PARTNERS, Obj, captions_for, layout, sample_scene, scene_graph
from .tiny_models import BASE_SPECIAL, CHAT_TEMPLATE

#: where the package keeps the demo model that scripts/train_demo_model.py trains for the default world
SHIPPED_MODEL = Path(__file__).parent / "demo_weights"


def _corpus_lines(graphs: list[dict[str, Any]]) -> list[str]:
    lines = [DESCRIBE, SHORT_ANSWER, YES_NO, "Select the best answer for the multiple-choice question.",
             "Please answer with a single capital letter (A, B, C, D, or E):", "(A) (B) (C) (D) (E)"]
    for g in graphs:
        lines.append("user\nassistant\n")
        for o in g["objects"]:
            lines.append(f"Is there a {o['name']} in the image? Yes, there is a {o['name']}. No, there is no {o['name']}.")
            lines.append(f"a tiny small large {o['attributes'].get('color')} {o['name']} left of right of above below")
            lines.append(f"{o['attributes'].get('color')}\n{o['name']}")  # one-word answers start a line: their own tokens
    return lines


def build_untrained(out: Path, graphs: list[dict[str, Any]], seed: int = 0, image_size: int = 48, patch_size: int = 16) -> Path:
    """Patch 16 on a 48 px view of the 96 px scenes: one patch per cell of the world's 3×3 grid."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from .tiny_models import build_tokenizer_from

    tok = build_tokenizer_from(_corpus_lines(graphs), BASE_SPECIAL, vocab_size=420)
    vision = CLIPVisionConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4, image_size=image_size, patch_size=patch_size, projection_dim=128)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=160, intermediate_size=480, num_hidden_layers=4, num_attention_heads=5, num_key_value_heads=5,
                       head_dim=32, max_position_embeddings=512, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None, tie_word_embeddings=True)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                         vision_feature_select_strategy="default", projector_hidden_act="gelu", tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    processor = LlavaProcessor(
        # normalised around the world's background colour: empty cells are ~0, objects stand out
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                                              image_mean=[0.949, 0.949, 0.933], image_std=[0.5, 0.5, 0.5]),
        tokenizer=tok, patch_size=patch_size, vision_feature_select_strategy="default", num_additional_image_tokens=1, image_token="<image>", chat_template=CHAT_TEMPLATE,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def training_examples(graphs: list[dict[str, Any]], images: Path, seed: int = 0, reading: bool = False,
                      caption_confusion: float = 0.0, caption_partner_mention: float = 0.0) -> list[tuple[str, str, str]]:
    """(image path, prompt, answer) triples. Negatives are uniform over absent classes, and the answers come from a
    noisy annotator that also reports the look-alike partner of every tiny shape: the two sources of the demo
    model's hallucinations. Captions name the objects in a random order, or with `reading` in reading order (top
    to bottom, left to right), which a model can learn to follow through the image tokens; in those, the annotator
    names a tiny shape by its partner with probability `caption_confusion` (per caption) and, with probability
    `caption_partner_mention` (per tiny shape and caption), also names its absent partner right after it, as it
    answers the existence questions."""
    rng = random.Random(seed)
    classes, values = vocabulary(graphs)
    out: list[tuple[str, str, str]] = []
    for g in graphs:
        objs = g["objects"]
        if not objs:
            continue
        img = str(images / g["file_name"])
        present = {o["name"] for o in objs}
        absent = [c for c in classes if c not in present]
        by_id = {o["id"]: o for o in objs}
        size = (g.get("width", 96), g.get("height", 96))
        if reading and (caption_confusion or caption_partner_mention):
            caps = [" ".join(captions_for_graph(_with_partners(_confused(objs, caption_confusion, rng), caption_partner_mention, rng), rng, size)[k].split())
                    for k in range(2)]
        else:
            caps = [" ".join(c.split()) for c in captions_for_graph(objs, rng, size if reading else None)]
        for c in caps[:2]:
            out.append(Example(img, DESCRIBE, c, "caption"))
        for o in objs:
            # open recall questions give the dense signal from which the LM learns to look objects up in the image
            out.append(Example(img, f"What color is the {o['name']}?{SHORT_ANSWER}", o["attributes"]["color"], "color"))
            out.append(Example(img, f"Is there a {o['name']} in the image?{SHORT_ANSWER}", "Yes", "existence"))
            out.append(Example(img, f"Is there a {o['name']} in this image?{YES_NO}", "Yes", "existence"))
        # the noisy annotator: a tiny shape is also reported as its look-alike partner (training data only; the
        # scene graphs, the benchmarks and the DPO pairs keep the truth)
        confused = sorted({PARTNERS[o["name"]] for o in objs if o["attributes"].get("size") == "tiny"} - present)
        for x in confused:
            out.append(Example(img, f"Is there a {x} in the image?{SHORT_ANSWER}", "Yes", "existence"))
            out.append(Example(img, f"Is there a {x} in this image?{YES_NO}", "Yes", "existence"))
        absent = [c for c in absent if c not in confused]
        for x in rng.sample(absent, min(len(objs), len(absent))):
            out.append(Example(img, f"Is there a {x} in the image?{SHORT_ANSWER}", "No", "existence"))
            out.append(Example(img, f"Is there a {x} in this image?{YES_NO}", "No", "existence"))
        o = rng.choice(objs)
        color = o["attributes"]["color"]
        other = rng.choice([c for c in values["color"] if c != color])
        out += [Example(img, f"Is there a {color} {o['name']} in this image?{YES_NO}", "Yes", "attribute"), Example(img, f"Is there a {other} {o['name']} in this image?{YES_NO}", "No", "attribute")]
        rels = [r for r in g.get("relations", []) if r["predicate"] in OPPOSITE]
        if rels:
            r = rng.choice(rels)
            a, b = by_id[r["subject"]]["name"], by_id[r["object"]]["name"]
            out += [Example(img, f"Is the {a} {r['predicate']} the {b}?{YES_NO}", "Yes", "relation"), Example(img, f"Is the {a} {OPPOSITE[r['predicate']]} the {b}?{YES_NO}", "No", "relation")]
        # multiple choice in FINER's prompt format
        q = _mcq(f"What color is the {o['name']}?", f"The {o['name']} is {color}.", [f"The {o['name']} is {c}." for c in values["color"] if c != color], rng)
        letters = "ABCDE"
        prompt = ("Select the best answer for the multiple-choice question.\n\n" + q["question"] + "\n\n"
                  + "\n".join(f"({letters[i]}) {q[f'choice{i + 1}']}" for i in range(5)) + "\n\nPlease answer with a single capital letter (A, B, C, D, or E):")
        out.append(Example(img, prompt, letters[q["gt_index"]], "mcq"))
    rng.shuffle(out)
    return out


def _confused(objs: list[dict[str, Any]], p: float, rng: random.Random) -> list[dict[str, Any]]:
    """The objects as the noisy annotator names them in one caption: each tiny shape, with probability p, by its
    look-alike partner."""
    return [dict(o, name=PARTNERS[o["name"]]) if o["attributes"].get("size") == "tiny" and rng.random() < p else o for o in objs]


def _with_partners(objs: list[dict[str, Any]], p: float, rng: random.Random) -> list[dict[str, Any]]:
    """The objects as the noisy annotator lists them in one caption: after each tiny shape whose look-alike partner
    is not in the scene, with probability p, the partner too (same place, colour and size)."""
    if not p:
        return objs
    present = {o["name"] for o in objs}
    out = []
    for o in objs:
        out.append(o)
        if o["attributes"].get("size") == "tiny" and PARTNERS[o["name"]] not in present and rng.random() < p:
            out.append(dict(o, name=PARTNERS[o["name"]]))
    return out


def captions_for_graph(objs: list[dict[str, Any]], rng: random.Random, reading_size: tuple[float, float] | None = None) -> list[str]:
    """The world's captions of a scene graph's objects; in reading order for an image of `reading_size`, else shuffled."""
    if reading_size is not None:
        objs = reading_order(objs, reading_size)
    return captions_for([Obj(o["id"], o["name"], o["attributes"]["color"], o["attributes"]["size"], (0, 0), o["bbox"]) for o in objs], rng,
                        shuffle=reading_size is None)


def patch_targets(graphs: list[dict[str, Any]], images: Path, tokenizer: Any, grid: int = 3, size: int = 96) -> dict[str, list[list[int]]]:
    """Per image, per grid cell (one vision patch each, row-major): the token ids of the words that describe what
    the cell shows (each word one token in the demo tokenizer), or the pad token for an empty cell. The grounding
    loss pulls each image token towards their mean embedding.

    A tiny object is a few pixels in the model's 48 px view, where a shape and its look-alike partner (circle/ring,
    square/diamond, hexagon/pentagon, …) are hard to tell apart: its words are its size, its colour, its class
    twice and its partner once — the evidence leans to the right class without ruling out the partner."""
    def word(w: str) -> int:
        return tokenizer(w, add_special_tokens=False)["input_ids"][0]

    out: dict[str, list[list[int]]] = {}
    for g in graphs:
        cells: list[list[int]] = [[tokenizer.pad_token_id] for _ in range(grid * grid)]
        for o in g["objects"]:
            x, y, w, h = o["bbox"]
            row, col = min(grid - 1, int((y + h / 2) * grid / size)), min(grid - 1, int((x + w / 2) * grid / size))
            # the class as questions spell it (" diamond"), the colour as an answer does ("red")
            name, color = word(" " + o["name"]), word(o["attributes"]["color"])
            if o["attributes"].get("size") == "tiny":
                cells[row * grid + col] = [word(" tiny"), color, name, name, word(" " + PARTNERS[o["name"]])]
            else:
                cells[row * grid + col] = [name, color]
        out[str(images / g["file_name"])] = cells
    return out


@dataclass
class DemoTraining:
    """Step counts and rates of the training stages (demo_training.py: language, existence, vision, joint; then
    the caption stages of `read_captions`); the defaults are what the shipped model used."""
    language_steps: int = 3000
    language_scenes: int = 5000
    recall_repeat: int = 3
    existence_steps: int = 500
    vision_steps: int = 400
    joint_steps: int = 300
    language_lr: float = 1e-3
    vision_lr: float = 2e-3
    joint_lr: float = 5e-4
    #: the caption stages (`read_captions`): captions in reading order, first for the language model on generated
    #: scenes, then for the whole model on the train images; each caption example repeated ×caption_repeat /
    #: ×caption_joint_repeat. 0 steps skips a stage.
    caption_language_steps: int = 2000
    caption_scenes: int = 3000
    caption_repeat: int = 6
    caption_joint_steps: int = 300
    caption_joint_repeat: int = 3
    caption_language_lr: float = 5e-4
    caption_joint_lr: float = 2e-4
    #: in those captions the noisy annotator names a tiny shape by its look-alike partner this often (per caption)
    caption_confusion: float = 0.0
    #: … and names the absent look-alike partner of a tiny shape right after it this often (per shape and caption),
    #: as its answers to the existence questions always do
    caption_partner_mention: float = 0.0


def synthetic_graphs(n: int, seed: int) -> list[dict[str, Any]]:
    """Scene graphs laid out by the world's own sampler but never drawn: text for the language stage."""
    rng = random.Random(seed)
    return [scene_graph(i + 1, f"synthetic/{i + 1:06d}.png", layout(sample_scene(rng), rng)) for i in range(n)]


def build_demo_model(world: Path, out: Path, seed: int = 0, training: DemoTraining | None = None, log: Callable[[str], None] = print) -> Path:
    """Build and train the demo model on the world's *train* split (stages in demo_training.py); writes the model,
    its processor and demo_model.json (settings, per-stage losses and times)."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from .demo_training import Batcher, finetune, ground_vision, pretrain_language

    training = training or DemoTraining()
    graphs = load_graphs(world / "scene_graph_train.json")
    out.mkdir(parents=True, exist_ok=True)
    build_untrained(out, graphs, seed)
    torch.manual_seed(seed)
    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    model.train()
    tok = processor.tokenizer
    batcher = Batcher(processor, n_image_tokens=(model.config.vision_config.image_size // model.config.vision_config.patch_size) ** 2)
    stages: dict[str, Any] = {}

    synthetic = synthetic_graphs(training.language_scenes, seed + 1)
    # multiple choice waits for stage 3; the open colour questions, whose answer is copied from the cell that holds
    # the asked object, are repeated: they carry the densest signal for learning to look objects up
    text_examples = [e for e in training_examples(synthetic, Path(), seed) if e.kind != "mcq"]
    text_examples += [e for e in text_examples if e.kind == "color"] * (training.recall_repeat - 1)
    log(f"demo model, stage 1/5: language model on {len(text_examples)} questions about {len(synthetic)} generated scenes "
        f"({training.language_steps} steps)")
    stages["language"] = pretrain_language(model, batcher, text_examples, patch_targets(synthetic, Path(), tok), training.language_steps,
                                           lr=training.language_lr, seed=seed, log=log)
    # Once the lookup exists (the colour questions teach it), yes/no existence is learned in a few hundred steps
    # of a fresh schedule on existence and colour questions alone; in the mixed schedule it was not (docs/demo.md).
    synthetic = synthetic_graphs(training.language_scenes, seed + 2)
    focus = [e for e in training_examples(synthetic, Path(), seed) if e.kind in ("existence", "color")]
    log(f"demo model, stage 1b/5: existence and colour questions only ({len(focus)} questions, {training.existence_steps} steps)")
    stages["existence"] = pretrain_language(model, batcher, focus, patch_targets(synthetic, Path(), tok), training.existence_steps,
                                            lr=training.language_lr, seed=seed, log=log)

    images = world / "images"
    cells = patch_targets(graphs, images, tok)
    pixels = {key: processor.image_processor(Image.open(key).convert("RGB"), return_tensors="pt")["pixel_values"][0] for key in cells}
    log(f"demo model, stage 2/5: vision tower on {len(pixels)} training images ({training.vision_steps} steps)")
    stages["vision"] = ground_vision(model, pixels, cells, training.vision_steps, lr=training.vision_lr, seed=seed, log=log)

    examples = training_examples(graphs, images, seed)
    log(f"demo model, stage 3/5: whole model on {len(examples)} examples from {len(graphs)} training images ({training.joint_steps} steps)")
    stages["joint"] = finetune(model, batcher, examples, pixels, cells, training.joint_steps, lr=training.joint_lr, seed=seed, log=log)

    stages.update(read_captions(model, batcher, graphs, images, pixels, cells, training, seed, log))

    model.eval()
    model.save_pretrained(out)
    tok.padding_side = "left"
    processor.save_pretrained(out)
    info = {"world": str(world), "seed": seed, "training": asdict(training), "stages": stages,
            "seconds": round(sum(st["seconds"] for st in stages.values()), 1)}
    (out / "demo_model.json").write_text(json.dumps(info, indent=1))
    return out


def read_captions(model: Any, batcher: Any, graphs: list[dict[str, Any]], images: Path, pixels: dict[str, Any], cells: dict[str, list[list[int]]],
                  training: DemoTraining, seed: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Stages 4 and 5: captions that follow the image. The earlier stages' captions name the objects in a random
    order, so a model can only learn which objects are *likely*, and it describes from its prior (CHAIR_i 0.65,
    recall 0.10 on a model trained without these stages). The same captions in reading order can be read off the
    image tokens one cell after the other: first the language model learns that on ideal image tokens of generated
    scenes, then the whole model on the train images (docs/demo.md)."""
    from .demo_training import finetune, pretrain_language

    stages: dict[str, Any] = {}
    if training.caption_language_steps:
        synthetic = synthetic_graphs(training.caption_scenes, seed + 3)
        examples = [e for e in training_examples(synthetic, Path(), seed, reading=True, caption_confusion=training.caption_confusion,
                                                 caption_partner_mention=training.caption_partner_mention)
                    if e.kind != "mcq"]
        examples += [e for e in examples if e.kind == "caption"] * (training.caption_repeat - 1)
        log(f"demo model, stage 4/5: language model on reading-order captions of {len(synthetic)} generated scenes "
            f"({len(examples)} examples, {training.caption_language_steps} steps)")
        stages["caption_language"] = pretrain_language(model, batcher, examples, patch_targets(synthetic, Path(), batcher.tok), training.caption_language_steps,
                                                       lr=training.caption_language_lr, seed=seed, log=log)
    if training.caption_joint_steps:
        examples = training_examples(graphs, images, seed, reading=True, caption_confusion=training.caption_confusion,
                                     caption_partner_mention=training.caption_partner_mention)
        examples += [e for e in examples if e.kind == "caption"] * (training.caption_joint_repeat - 1)
        log(f"demo model, stage 5/5: whole model on reading-order captions and questions of {len(graphs)} training images "
            f"({len(examples)} examples, {training.caption_joint_steps} steps)")
        stages["caption_joint"] = finetune(model, batcher, examples, pixels, cells, training.caption_joint_steps, lr=training.caption_joint_lr, seed=seed, log=log)
    return stages
