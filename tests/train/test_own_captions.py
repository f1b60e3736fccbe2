"""own_captions: best-of-n pairs from the model's own sampled captions, judged against the annotations with CHAIR."""
import json

import pytest

from mmhallu_eval.task import TaskError
from mmhallu_eval.train.strategies.own_captions import caption_judge, own_caption_pairs


def _row(image_id, k, caption, objects, truth):
    return {"image_id": image_id, "sample": k, "image": f"img{image_id}.png", "prompt": "Please describe this image in detail.", "caption": caption,
            "objects": objects, "truth": truth, "hallucinated": sorted(set(objects) - set(truth))}


def test_own_caption_pairs_pair_each_hallucination_with_the_closest_clean_caption():
    truth = ["circle", "ring", "star"]
    rows = [
        _row(1, 0, "There is a circle, a moon and a star in this image.", ["circle", "moon", "star"], truth),  # hallucinates moon
        _row(1, 1, "There is a circle, a moon and a star in this image.", ["circle", "moon", "star"], truth),  # same text: one pair
        _row(1, 2, "There is a square and a star in this image.", ["square", "star"], truth),  # hallucinates square
        _row(1, 3, "There is a circle, a ring and a star in this image.", ["circle", "ring", "star"], truth),  # clean, same style
        _row(1, 4, "A picture with a large red circle, a small blue ring and a tiny green star.", ["circle", "ring", "star"], truth),  # clean, other style
        _row(1, 5, "There is a star in this image.", ["star"], truth),  # clean but covers less
        _row(2, 0, "There is a heart in this image.", ["heart"], ["arrow"]),  # no clean caption of image 2: no pair
        _row(3, 0, "There is a kite in this image.", ["kite"], ["bar"]),
        _row(3, 1, "A picture with a large red bar.", ["bar"], ["bar"]),  # the only clean one: other style, still used
        {"image_id": 2, "sample": 1, "image": "img2.png", "error": "boom"},  # failed samples are skipped
    ]
    pairs = own_caption_pairs(rows, max_per_image=4, seed=0)
    text = lambda turn: turn[0]["content"][0]["text"]
    assert len(pairs) == 3 and {p["image_id"] for p in pairs} == {1, 3}
    assert [text(p["chosen"]) for p in pairs if p["image_id"] == 3] == ["A picture with a large red bar."]
    pairs = [p for p in pairs if p["image_id"] == 1]
    for p in pairs:
        assert text(p["chosen"]) == "There is a circle, a ring and a star in this image."  # same opening, covers most
        assert p["strategy"] == "own_captions" and p["hallucinated"] and p["samples"][0] == 3
    assert {text(p["rejected"]) for p in pairs} == {rows[0]["caption"], rows[2]["caption"]}
    assert len(own_caption_pairs(rows, max_per_image=1, seed=0)) == 2
    repeated = own_caption_pairs(rows, max_per_image=4, repeat=3, seed=0)
    assert len(repeated) == 9 and len({p["id"] for p in repeated}) == 9
    with pytest.raises(TaskError, match="at least 1"):
        own_caption_pairs(rows, max_per_image=0)


@pytest.mark.slow
def test_sample_captions_and_the_loop_stage(world, tmp_path):
    """The shipped demo model captions the tiny world's training images; the loop samples once, builds own_captions
    pairs from the samples, and skips the sampling on a rerun."""
    pytest.importorskip("trl", reason="the [train] extra (trl, peft) is not installed")
    from mmhallu_eval.nltk_resources import missing_nltk_resources

    if missing_nltk_resources():
        pytest.skip("NLTK data for the CHAIR parser is missing (set NLTK_DATA or run `mmhallu setup nltk`)")
    from mmhallu_eval.annotations import load_graphs
    from mmhallu_eval.train.loop import LoopConfig, run_loop
    from mmhallu_eval.train.strategies.own_captions import sample_captions
    from mmhallu_eval.world.demo_model import SHIPPED_MODEL

    graphs = load_graphs(world / "scene_graph_train.json")[:6]
    backend = {"device": "cpu", "dtype": "float32"}
    judge = caption_judge(["chair"], {"chair": {"synonyms": str(world / "synonyms.txt")}})
    rows = sample_captions(str(SHIPPED_MODEL), graphs, world / "images", judge, n=3, temperature=1.0, seed=0,
                           backend_args=backend, max_new_tokens=48, log=lambda _: None)
    assert len(rows) == 18 and not any(r.get("error") for r in rows)
    by_id = {g["image_id"]: g for g in graphs}
    for r in rows:
        assert set(r["truth"]) == {o["name"] for o in by_id[r["image_id"]]["objects"]}
        assert set(r["hallucinated"]) == set(r["objects"]) - set(r["truth"])
    assert sum(bool(r["objects"]) for r in rows) > 9  # the demo model names the world's objects
    again = sample_captions(str(SHIPPED_MODEL), graphs, world / "images", judge, n=3, temperature=1.0, seed=0,
                            backend_args=backend, max_new_tokens=48, log=lambda _: None)
    assert [r["caption"] for r in again] == [r["caption"] for r in rows]  # seeded
    with pytest.raises(TaskError, match="at least 2"):
        sample_captions(str(SHIPPED_MODEL), graphs, world / "images", judge, n=1)
    with pytest.raises(TaskError, match="temperature"):
        sample_captions(str(SHIPPED_MODEL), graphs, world / "images", judge, n=2, temperature=0)
    with pytest.raises(TaskError, match="none of pope does"):
        caption_judge(["pope"], {})

    chair = {"coco_annotations": str(world), "images": str(world / "images"), "synonyms": str(world / "synonyms.txt"), "n_images": "4"}
    cfg = LoopConfig(model=str(SHIPPED_MODEL), train_annotations=str(world / "scene_graph_train.json"), train_images=str(world / "images"),
                     tasks=["chair"], out=tmp_path / "loop", task_args={"chair": chair}, strategies=["own_captions"], backend_args=backend,
                     max_new_tokens=48, train={"max_steps": 2, "batch_size": 2}, pair_options={"own_samples": 8, "own_temperature": 1.0}, show_progress=False)
    logs: list[str] = []
    run_loop(cfg, log=logs.append)
    state = json.loads((tmp_path / "loop" / "loop.json").read_text())
    assert list(state["stages"]) == ["base", "own_captions", "pairs", "train", "tuned", "compare"]
    assert state["stages"]["own_captions"]["outputs"]["n"] == 8 * 24 and state["stages"]["own_captions"]["outputs"]["hallucinating"] > 0
    meta = json.loads((tmp_path / "loop" / "pairs.meta.json").read_text())
    assert meta["counts"].get("own_captions/caption", 0) > 0
    logs.clear()
    run_loop(cfg, log=logs.append)
    assert "[loop] own_captions: up to date, skipped" in logs


@pytest.mark.slow
def test_a_reasoning_models_caption_is_its_answer(world, tmp_path):
    """A reasoning model writes `<think>…</think>` before its caption: the caption judged and paired is the answer
    after it, and a caption whose reasoning never closes is a failed sample, not a caption."""
    from mmhallu_eval.annotations import load_graphs
    from mmhallu_eval.train.strategies.own_captions import sample_captions
    from mmhallu_eval.world.families import build_family

    model = build_family("qwen3_vl_thinking", tmp_path / "thinking")
    graphs = load_graphs(world / "scene_graph_train.json")[:3]
    judge = caption_judge(["chair"], {"chair": {"synonyms": str(world / "synonyms.txt")}})
    args = {"device": "cpu", "dtype": "float32"}
    rows = sample_captions(str(model), graphs, world / "images", judge, n=2, temperature=0.1, backend_args=args, max_new_tokens=48, log=lambda _: None)
    assert [r["caption"] for r in rows] == ["No"] * 6  # what the model is taught to answer after its reasoning
    cut = sample_captions(str(model), graphs, world / "images", judge, n=2, temperature=0.1, backend_args=args, max_new_tokens=3, log=lambda _: None)
    assert all(r["error"].startswith("unfinished_reasoning") and "caption" not in r for r in cut)
