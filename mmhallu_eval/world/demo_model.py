"""The demo VLM: a small LLaVA-architecture model trained from scratch on the shapes world's *train* split
(captions + yes/no, attribute, relation and multiple-choice QA), on CPU in minutes, with a fixed seed.

Negatives in its training questions are drawn uniformly, so the partner of a present class is rarely asked
about: the design intends a model that leans on the co-occurrence prior where its vision is unsure. A grounding
loss maps every image token onto the text embeddings of what its grid cell holds. Status (docs/demo.md): the
vision side works (image tokens identify their cell's class), but the language model has not yet learned to
read them within the step budget, so the demo model still answers from the text prior.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Callable

from ..annotations import OPPOSITE, load_graphs, vocabulary
from ..build.qa import _mcq
from .shapes import Obj, captions_for
from .tiny_models import BASE_SPECIAL, CHAT_TEMPLATE

POPE_SUFFIX = "\nAnswer the question using a single word or phrase."
MME_SUFFIX = " Please answer yes or no."
DESCRIBE = "Please describe this image in detail."


def _corpus_lines(graphs: list[dict[str, Any]]) -> list[str]:
    lines = [DESCRIBE, POPE_SUFFIX, MME_SUFFIX, "Select the best answer for the multiple-choice question.",
             "Please answer with a single capital letter (A, B, C, D, or E):", "(A) (B) (C) (D) (E)"]
    for g in graphs:
        for o in g["objects"]:
            lines.append(f"Is there a {o['name']} in the image? Yes, there is a {o['name']}. No, there is no {o['name']}.")
            lines.append(f"a small large {o['attributes'].get('color')} {o['name']} left of right of above below")
    return lines


def build_untrained(out: Path, graphs: list[dict[str, Any]], seed: int = 0, image_size: int = 48, patch_size: int = 16) -> Path:
    """Patch 16 on a 48 px view of the 96 px scenes: one patch per cell of the world's 3×3 grid."""
    import torch
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

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


def training_examples(graphs: list[dict[str, Any]], images: Path, seed: int = 0) -> list[tuple[str, str, str]]:
    """(image path, prompt, answer) triples. Negatives are uniform over absent classes (the source of the bias)."""
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
        caps = [" ".join(c.split()) for c in captions_for_graph(objs, rng)]
        for c in caps[:2]:
            out.append((img, DESCRIBE, c))
        for o in objs:
            out.append((img, f"Is there a {o['name']} in the image?{POPE_SUFFIX}", "Yes"))
            out.append((img, f"Is there a {o['name']} in this image?{MME_SUFFIX}", "Yes"))
        for x in rng.sample(absent, min(len(objs), len(absent))):
            out.append((img, f"Is there a {x} in the image?{POPE_SUFFIX}", "No"))
            out.append((img, f"Is there a {x} in this image?{MME_SUFFIX}", "No"))
        o = rng.choice(objs)
        color = o["attributes"]["color"]
        other = rng.choice([c for c in values["color"] if c != color])
        out += [(img, f"Is there a {color} {o['name']} in this image?{MME_SUFFIX}", "Yes"), (img, f"Is there a {other} {o['name']} in this image?{MME_SUFFIX}", "No")]
        rels = [r for r in g.get("relations", []) if r["predicate"] in OPPOSITE]
        if rels:
            r = rng.choice(rels)
            a, b = by_id[r["subject"]]["name"], by_id[r["object"]]["name"]
            out += [(img, f"Is the {a} {r['predicate']} the {b}?{MME_SUFFIX}", "Yes"), (img, f"Is the {a} {OPPOSITE[r['predicate']]} the {b}?{MME_SUFFIX}", "No")]
        # multiple choice in FINER's prompt format
        q = _mcq(f"What color is the {o['name']}?", f"The {o['name']} is {color}.", [f"The {o['name']} is {c}." for c in values["color"] if c != color], rng)
        letters = "ABCDE"
        prompt = ("Select the best answer for the multiple-choice question.\n\n" + q["question"] + "\n\n"
                  + "\n".join(f"({letters[i]}) {q[f'choice{i + 1}']}" for i in range(5)) + "\n\nPlease answer with a single capital letter (A, B, C, D, or E):")
        out.append((img, prompt, letters[q["gt_index"]]))
    rng.shuffle(out)
    return out


def captions_for_graph(objs: list[dict[str, Any]], rng: random.Random) -> list[str]:
    return captions_for([Obj(o["id"], o["name"], o["attributes"]["color"], o["attributes"]["size"], (0, 0), o["bbox"]) for o in objs], rng)


def patch_targets(graphs: list[dict[str, Any]], images: Path, tokenizer: Any, grid: int = 3, size: int = 96) -> dict[str, list[list[int]]]:
    """Per image, per grid cell (one vision patch each, row-major): the token ids of the object's class and colour
    words, or the pad token for an empty cell. The grounding loss below pulls each image token towards them."""
    def word(w: str) -> int:
        return tokenizer(" " + w, add_special_tokens=False)["input_ids"][0]

    out: dict[str, list[list[int]]] = {}
    for g in graphs:
        cells: list[list[int]] = [[tokenizer.pad_token_id] for _ in range(grid * grid)]
        for o in g["objects"]:
            x, y, w, h = o["bbox"]
            row, col = min(grid - 1, int((y + h / 2) * grid / size)), min(grid - 1, int((x + w / 2) * grid / size))
            cells[row * grid + col] = [word(o["name"]), word(o["attributes"]["color"])]
        out[str(images / g["file_name"])] = cells
    return out


def train(model_dir: Path, examples: list[tuple[str, str, str]], steps: int, batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
          log: Callable[[str], None] = print, vision_lr_scale: float = 1.0, grounding: dict[str, list[list[int]]] | None = None,
          grounding_weight: float = 1.0) -> dict[str, Any]:
    """Plain supervised training on the answer tokens, AdamW with warm-up and cosine decay. Pixel values and
    token ids are computed once per image and text (the processor's own output, cached)."""
    import math

    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    torch.manual_seed(seed)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    tok = processor.tokenizer
    pad = tok.pad_token_id
    pixels: dict[str, torch.Tensor] = {}
    ids: dict[tuple[str, str], tuple[list[int], int]] = {}

    def encode(image: str, prompt: str, answer: str) -> tuple[list[int], int, torch.Tensor]:
        if image not in pixels:
            pixels[image] = processor.image_processor(Image.open(image).convert("RGB"), return_tensors="pt")["pixel_values"][0]
        key = (prompt, answer)
        if key not in ids:
            chat = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}], add_generation_prompt=True, tokenize=False)
            img = Image.open(image).convert("RGB")
            p_ids = processor(text=[chat], images=[[img]], return_tensors="pt")["input_ids"][0].tolist()
            full = processor(text=[chat + answer + "<|im_end|>"], images=[[img]], return_tensors="pt")["input_ids"][0].tolist()
            ids[key] = (full, len(p_ids))
        full, n_prompt = ids[key]
        return full, n_prompt, pixels[image]

    # From scratch the text prior is learned long before the image path carries signal; a higher learning rate
    # for the vision tower and projector lets the model start looking before it settles on the prior.
    vision = [p for n, p in model.named_parameters() if "vision_tower" in n or "multi_modal_projector" in n]
    rest = [p for n, p in model.named_parameters() if not ("vision_tower" in n or "multi_modal_projector" in n)]
    opt = torch.optim.AdamW([{"params": rest, "lr": lr}, {"params": vision, "lr": lr * vision_lr_scale}], lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    rng = random.Random(seed)
    t0 = time.time()
    history: list[float] = []
    for step in range(steps):
        picked = [examples[rng.randrange(len(examples))] for _ in range(batch_size)]
        batch = [encode(*ex) for ex in picked]
        width = max(len(f) for f, _, _ in batch)
        input_ids = torch.full((batch_size, width), pad, dtype=torch.long)
        labels = torch.full((batch_size, width), -100, dtype=torch.long)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for row, (full, n_prompt, _) in enumerate(batch):
            input_ids[row, : len(full)] = torch.tensor(full)
            mask[row, : len(full)] = 1
            labels[row, n_prompt : len(full)] = torch.tensor(full[n_prompt:])
        pixel_values = torch.stack([p for _, _, p in batch])
        loss = model(input_ids=input_ids, attention_mask=mask, pixel_values=pixel_values, labels=labels).loss
        if grounding:
            loss = loss + grounding_weight * _grounding_loss(model, pixel_values, [grounding[ex[0]] for ex in picked])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        history.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps} loss {sum(history[-100:]) / len(history[-100:]):.4f} ({time.time() - t0:.0f}s)")
    model.eval()
    model.save_pretrained(model_dir)
    tok.padding_side = "left"
    processor.save_pretrained(model_dir)
    return {"steps": steps, "final_loss": sum(history[-100:]) / len(history[-100:]), "seconds": round(time.time() - t0, 1)}


def _grounding_loss(model: Any, pixel_values: Any, cells: list[list[list[int]]]) -> Any:
    """Each projected image token is pulled towards the mean text embedding of the words for its cell (class and
    colour; the pad embedding for an empty cell), scaled by the embeddings' size: image tokens then read like the
    words they show, at the scale of text, so the LM can learn to copy from them instead of from its prior."""
    import torch

    cfg = model.config
    feats = model.model.get_image_features(pixel_values=pixel_values, vision_feature_layer=cfg.vision_feature_layer,
                                           vision_feature_select_strategy=cfg.vision_feature_select_strategy).pooler_output
    feats = torch.stack(list(feats))  # (batch, patches, hidden)
    emb = model.get_input_embeddings().weight.detach()
    target = torch.stack([torch.stack([emb[ids].mean(0) for ids in per_image]) for per_image in cells])
    return ((feats - target) ** 2).sum(-1).mean() / (target**2).sum(-1).mean()


def build_demo_model(world: Path, out: Path, steps: int = 1500, seed: int = 0, log: Callable[[str], None] = print) -> Path:
    graphs = load_graphs(world / "scene_graph_train.json")
    out.mkdir(parents=True, exist_ok=True)
    build_untrained(out, graphs, seed)
    examples = training_examples(graphs, world / "images", seed)
    from transformers import AutoTokenizer

    grounding = patch_targets(graphs, world / "images", AutoTokenizer.from_pretrained(out))
    log(f"training the demo model on {len(examples)} examples from {len(graphs)} training images ({steps} steps, with the grounding loss)")
    info = train(out, examples, steps, seed=seed, log=log, grounding=grounding)
    (out / "demo_model.json").write_text(json.dumps({"world": str(world), "seed": seed, **info}, indent=1))
    return out
