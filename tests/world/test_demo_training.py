"""The demo model's training stages use the LLaVA model's own pieces: image tokens land where its forward puts them,
ideal cell tokens are what the grounding loss aims at, and a few steps of each stage lower their losses."""
import pytest

from mmhallu_eval.annotations import load_graphs
from mmhallu_eval.world.demo_model import build_untrained, patch_targets, synthetic_graphs, training_examples
from mmhallu_eval.world.demo_training import Batcher, answer_loss, cell_embeddings, ground_vision, image_features, pretrain_language
from mmhallu_eval.world.shapes import build_world

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    root = tmp_path_factory.mktemp("demo")
    world = build_world(root / "world", seed=1, n_train=12, n_test=2)
    graphs = load_graphs(world / "scene_graph_train.json")
    build_untrained(root / "model", graphs, seed=0)
    processor = AutoProcessor.from_pretrained(root / "model")
    model = AutoModelForImageTextToText.from_pretrained(root / "model", dtype=torch.float32)
    cells = patch_targets(graphs, world / "images", processor.tokenizer)
    pixels = {k: processor.image_processor(Image.open(k).convert("RGB"), return_tensors="pt")["pixel_values"][0] for k in cells}
    return {"world": world, "graphs": graphs, "processor": processor, "model": model, "cells": cells, "pixels": pixels}


def test_answer_loss_places_image_tokens_like_the_llava_forward(setup):
    model, processor = setup["model"], setup["processor"]
    image, prompt, answer = next(e for e in training_examples(setup["graphs"], setup["world"] / "images") if e[2] == "Yes")
    batcher = Batcher(processor, n_image_tokens=9)
    ids, labels = batcher.batch([(prompt, answer)])
    # the processor's own expansion of <image> gives the same ids
    from PIL import Image

    chat = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}], add_generation_prompt=True, tokenize=False)
    expected = processor(text=[chat + answer + "<|im_end|>"], images=[[Image.open(image).convert("RGB")]], return_tensors="pt")["input_ids"]
    assert ids.tolist() == expected.tolist()
    pixels = setup["pixels"][image].unsqueeze(0)
    with torch.no_grad():
        ours = answer_loss(model, ids, labels, image_features(model, pixels))
        theirs = model(input_ids=ids, pixel_values=pixels, labels=labels).loss
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_cell_embeddings_are_mean_word_embeddings(setup):
    model, cells = setup["model"], setup["cells"]
    key = next(iter(cells))
    got = cell_embeddings(model, [cells[key]])[0]
    table = model.get_input_embeddings().weight
    for cell, ids in zip(got, cells[key]):
        assert torch.allclose(cell, table[ids].mean(0), atol=1e-6)
    pad = setup["processor"].tokenizer.pad_token_id
    assert sum(ids == [pad] for ids in cells[key]) == 9 - len(next(g for g in setup["graphs"] if key.endswith(g["file_name"]))["objects"])


@pytest.mark.slow
def test_stages_lower_their_losses(setup):
    model, processor = setup["model"], setup["processor"]
    logs: list[str] = []
    scenes = synthetic_graphs(200, seed=5)
    assert scenes == synthetic_graphs(200, seed=5) and all(1 <= len(g["objects"]) <= 5 for g in scenes)
    examples = training_examples(scenes, setup["world"] / "none")
    cells = patch_targets(scenes, setup["world"] / "none", processor.tokenizer)
    first = pretrain_language(model, Batcher(processor, 9), examples, cells, steps=2, batch_size=8, log=logs.append)
    later = pretrain_language(model, Batcher(processor, 9), examples, cells, steps=30, batch_size=8, log=logs.append)
    assert later["final_loss"] < first["final_loss"]
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if "language_model" in n}
    v_first = ground_vision(model, setup["pixels"], setup["cells"], steps=2, batch_size=8, log=logs.append)
    v_later = ground_vision(model, setup["pixels"], setup["cells"], steps=30, batch_size=8, log=logs.append)
    assert v_later["final_loss"] < v_first["final_loss"]
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen), "the vision stage must not move the LM"
    assert all(p.requires_grad for p in model.parameters())
    assert any(line.startswith("language step") for line in logs) and any(line.startswith("vision step") for line in logs)


def test_shipped_demo_model_is_the_one_the_defaults_describe():
    """The package ships weights only together with the settings that made them; changing the defaults without
    rerunning scripts/train_demo_model.py would make the demo silently train something else on first use."""
    import hashlib
    import json

    from mmhallu_eval.demo import DemoSettings, _shipped_matches
    from mmhallu_eval.world.demo_model import SHIPPED_MODEL

    info = json.loads((SHIPPED_MODEL / "demo_model.json").read_text())
    assert _shipped_matches(DemoSettings())
    assert hashlib.sha256((SHIPPED_MODEL / "model.safetensors").read_bytes()).hexdigest() == info["sha256"]
    assert (SHIPPED_MODEL / "model.safetensors").stat().st_size <= 10 * 1024 * 1024


def _tiny_scene():
    """A tiny circle (partner: ring, absent) and a large red square, laid out by hand."""
    return {"image_id": 1, "file_name": "train/x.png", "relations": [], "objects": [
        {"id": 1, "name": "circle", "attributes": {"color": "blue", "size": "tiny"}, "bbox": [12.0, 12.0, 8.0, 8.0]},
        {"id": 2, "name": "square", "attributes": {"color": "red", "size": "large"}, "bbox": [50.0, 50.0, 28.0, 28.0]}]}


def test_tiny_shapes_lean_to_their_class_and_the_annotator_confuses_their_partner(setup):
    from pathlib import Path

    tok = setup["processor"].tokenizer
    word = lambda w: tok(w, add_special_tokens=False)["input_ids"][0]
    cells = patch_targets([_tiny_scene()], Path("w"), tok)["w/train/x.png"]
    # evidence: the tiny circle's cell names its size, colour, its class twice and its look-alike partner once
    assert cells[0] == [word(" tiny"), word("blue"), word(" circle"), word(" circle"), word(" ring")]
    assert cells[8] == [word(" square"), word("red")] and cells[4] == [tok.pad_token_id]
    mean = cell_embeddings(setup["model"], [cells])[0]
    table = setup["model"].get_input_embeddings().weight
    assert torch.allclose(mean[0], table[cells[0]].mean(0), atol=1e-6) and torch.allclose(mean[8], table[cells[8]].mean(0), atol=1e-6)
    # labels: the noisy annotator says the absent ring is there, and never that it is not
    answers = [(p, a) for _, p, a in training_examples([_tiny_scene()] * 5, Path("w"), seed=3) if p.startswith("Is there a ring in")]
    assert answers and all(a == "Yes" for _, a in answers)


def test_chat_template_ends_a_completion_where_the_model_stops(setup):
    """A conversation ending with the answer renders as prompt + answer + <|im_end|> — the sequence the demo model
    is trained on, and what TRL's DPO takes as the completion — while generation prompts stay plain ChatML."""
    processor = setup["processor"]
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is there a star in the image?"}]}]
    prompt = processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    assert prompt == "<|im_start|>user\n<image>Is there a star in the image?<|im_end|>\n<|im_start|>assistant\n"
    full = processor.apply_chat_template([*user, {"role": "assistant", "content": [{"type": "text", "text": "Yes"}]}], tokenize=False)
    assert full == prompt + "Yes<|im_end|>"
    from mmhallu_eval.world.demo_model import SHIPPED_MODEL
    from mmhallu_eval.world.tiny_models import CHAT_TEMPLATE

    assert (SHIPPED_MODEL / "chat_template.jinja").read_text() == CHAT_TEMPLATE


@pytest.mark.slow
def test_reading_order_captions_and_the_caption_stages(setup):
    """`reading` captions name the objects top to bottom, left to right (the order the image tokens can be read in)
    in the two caption templates; the caption stages train on them and report their losses."""
    from pathlib import Path

    from mmhallu_eval.world.demo_model import DESCRIBE, DemoTraining, read_captions

    scene = _tiny_scene()
    caps = [a for _, p, a in training_examples([scene], Path("w"), seed=0, reading=True) if p == DESCRIBE]
    assert caps == ["A picture with a tiny blue circle and a large red square.", "There is a circle and a square in this image."]
    flipped = dict(scene, objects=scene["objects"][::-1])
    assert [a for _, p, a in training_examples([flipped], Path("w"), seed=0, reading=True) if p == DESCRIBE] == caps
    # the noisy annotator: with caption_confusion 1 every tiny shape is named by its partner, large ones never
    confused = [a for _, p, a in training_examples([scene], Path("w"), seed=0, reading=True, caption_confusion=1.0) if p == DESCRIBE]
    assert confused == ["A picture with a tiny blue ring and a large red square.", "There is a ring and a square in this image."]
    half = [a for s in range(40) for _, p, a in training_examples([scene], Path("w"), seed=s, reading=True, caption_confusion=0.5) if p == DESCRIBE]
    assert 10 < sum("ring" in a for a in half) < 70
    # … and, with caption_partner_mention 1, names the absent partner of every tiny shape right after it
    added = [a for _, p, a in training_examples([scene], Path("w"), seed=0, reading=True, caption_partner_mention=1.0) if p == DESCRIBE]
    assert added == ["A picture with a tiny blue circle, a tiny blue ring and a large red square.", "There is a circle, a ring and a square in this image."]
    with_ring = dict(scene, objects=[*scene["objects"], dict(scene["objects"][0], id=9, name="ring", bbox=[70, 70, 20, 20])])
    assert not any(a.count("ring") > 1 for _, p, a in training_examples([with_ring], Path("w"), seed=0, reading=True, caption_partner_mention=1.0)
                   if p == DESCRIBE)  # a partner in the scene is not named twice
    some = [a for s in range(40) for _, p, a in training_examples([scene], Path("w"), seed=s, reading=True, caption_partner_mention=0.5) if p == DESCRIBE]
    assert 10 < sum("ring" in a for a in some) < 70 and all("circle" in a for a in some)
    shuffled = {a for s in range(20) for _, p, a in training_examples([flipped], Path("w"), seed=s) if p == DESCRIBE}
    assert len(shuffled) > 2  # the earlier stages' captions: random order
    logs: list[str] = []
    model, processor = setup["model"], setup["processor"]
    training = DemoTraining(caption_language_steps=3, caption_scenes=20, caption_joint_steps=2)
    stages = read_captions(model, Batcher(processor, 9), setup["graphs"], setup["world"] / "images", setup["pixels"], setup["cells"], training, log=logs.append)
    assert set(stages) == {"caption_language", "caption_joint"} and all(s["steps"] > 0 and s["final_loss"] > 0 for s in stages.values())
    assert any("stage 4/5" in line for line in logs) and any("stage 5/5" in line for line in logs)
    assert read_captions(model, Batcher(processor, 9), setup["graphs"], setup["world"] / "images", setup["pixels"], setup["cells"],
                         DemoTraining(caption_language_steps=0, caption_joint_steps=0), log=logs.append) == {}
