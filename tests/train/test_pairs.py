"""Preference-pair builders on generated annotations: one-slot negatives, chosen ≠ rejected, contamination."""
import json
import re
import subprocess
import sys

import pytest

from mmhallu_eval.train.strategies.finer import finer_pairs
from mmhallu_eval.train.strategies.hadpo import hadpo_pairs
from mmhallu_eval.train.strategies.povid import povid_pairs
from mmhallu_eval.train.pairs import drop_contaminated
from mmhallu_eval.annotations import OPPOSITE, from_coco, load_graphs
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]


def _question(p):
    return p["prompt"][0]["content"][-1]["text"]


def test_finer_pairs_one_slot_negatives(world):
    graphs = load_graphs(world / "scene_graph_train.json")
    pairs = finer_pairs(graphs, world / "images", {"obj": 1, "attr": 1, "rel": 1, "wh": 1}, neg_ratio=0.5, seed=1)
    assert {p["pair_type"] for p in pairs} == {"obj", "attr", "rel", "wh"}
    assert {p["polarity"] for p in pairs if p["pair_type"] != "wh"} == {"pos", "neg"}
    by_image = {g["image_id"]: g for g in graphs}
    for p in pairs:
        assert p["chosen"] != p["rejected"] and p["images"][0].endswith(by_image[p["image_id"]]["file_name"])
        g = by_image[p["image_id"]]
        names = {o["name"] for o in g["objects"]}
        if p["polarity"] != "neg":
            continue
        (slot, (old, new)), = p["swapped"].items()  # exactly one slot changed
        assert old != new and new in _question(p) and old not in _question(p).replace(new, "")
        if slot == "object":
            assert new not in names and old in names
        elif slot == "predicate":
            assert OPPOSITE[old] == new
            rel_names = {(r["predicate"]) for r in g["relations"]}
            assert old in rel_names
        else:
            assert any(o["attributes"].get(slot) == old for o in g["objects"])
            assert not p["chosen"][0]["content"][0]["text"].startswith("Yes")


def test_finer_short_answer_style(world):
    """Same questions, same slots, same polarity as the sentence style; the short-answer suffix and one-word answers."""
    import pytest

    from mmhallu_eval.task import TaskError
    from mmhallu_eval.prompts import SHORT_ANSWER

    graphs = load_graphs(world / "scene_graph_train.json")
    mix = {"obj": 1, "attr": 1, "rel": 1, "wh": 1}
    long_pairs = finer_pairs(graphs, world / "images", mix, neg_ratio=0.5, seed=2)
    short_pairs = finer_pairs(graphs, world / "images", mix, neg_ratio=0.5, seed=2, answer_style="short")
    assert len(long_pairs) == len(short_pairs)
    text = lambda turn: turn[0]["content"][0]["text"]
    for lp, sp in zip(long_pairs, short_pairs):
        assert _question(sp) == _question(lp) + SHORT_ANSWER and sp["polarity"] == lp["polarity"] and sp["answer_style"] == "short"
        assert sp.get("swapped") == lp.get("swapped") and sp["slots"] == lp["slots"]
        if sp["pair_type"] == "wh":
            assert text(lp["chosen"]).endswith(f" {text(sp['chosen'])}.") and text(sp["chosen"]) != text(sp["rejected"])
        else:
            assert (text(sp["chosen"]), text(sp["rejected"])) == (("No", "Yes") if sp["polarity"] == "neg" else ("Yes", "No"))
            assert text(lp["chosen"]).startswith(text(sp["chosen"]))
    with pytest.raises(TaskError, match="answer style 'terse'"):
        finer_pairs(graphs, world / "images", mix, answer_style="terse")


def test_finer_both_polarities(world):
    """Every chosen image and type gets a positive and a one-slot negative (wh: its one form); ids stay unique."""
    graphs = load_graphs(world / "scene_graph_train.json")
    pairs = finer_pairs(graphs, world / "images", {"obj": 1.0, "attr": 0.0, "rel": 0.0, "wh": 1.0}, seed=3, both_polarities=True)
    assert len({p["id"] for p in pairs}) == len(pairs)
    with_objects = [g for g in graphs if g["objects"]]
    obj = [p for p in pairs if p["pair_type"] == "obj"]
    assert len(obj) == 2 * len(with_objects)  # every image has an absent class to ask about
    for g in with_objects:
        assert sorted(p["polarity"] for p in obj if p["image_id"] == g["image_id"]) == ["neg", "pos"]
    assert {p["polarity"] for p in pairs if p["pair_type"] == "wh"} == {"wh"}
    assert len([p for p in pairs if p["pair_type"] == "wh"]) == len(with_objects)
    assert {p["pair_type"] for p in pairs} == {"obj", "wh"}


def test_finer_negative_objects_are_adversarial(world):
    """An absent object is the one that co-occurs most with the image's objects (the world's partner)."""
    graphs = load_graphs(world / "scene_graph_train.json")
    pairs = [p for p in finer_pairs(graphs, world / "images", {"obj": 1}, neg_ratio=1.0) if p["pair_type"] == "obj"]
    assert pairs and all(p["polarity"] == "neg" for p in pairs)


def test_mix_weights_shift_the_types(world):
    graphs = load_graphs(world / "scene_graph_train.json")
    pairs = finer_pairs(graphs, world / "images", {"obj": 0.0, "attr": 1.0, "rel": 0.0, "wh": 0.0})
    assert {p["pair_type"] for p in pairs} == {"attr"}


def test_povid_rejected_injects_hallucinations(world):
    graphs = load_graphs(world / "scene_graph_train.json")
    pairs = povid_pairs(graphs, world / "images", seed=0)
    assert len(pairs) == len([g for g in graphs if g["objects"]])
    for p in pairs:
        chosen, rejected = p["chosen"][0]["content"][0]["text"], p["rejected"][0]["content"][0]["text"]
        assert chosen != rejected and p["injected"]
        g = next(g for g in graphs if g["image_id"] == p["image_id"])
        for o in g["objects"]:
            assert o["name"] in chosen and o["attributes"]["color"] in chosen
        # the injected object reads like the real ones (as many attribute words), so the pair differs only in what
        # is hallucinated
        phrases = lambda t: t.removeprefix("The image shows ").rstrip(".").replace(" and ", ", ").split(", ")  # noqa: E731
        n_words = {len(ph.split()) for ph in phrases(chosen) + phrases(rejected)}
        assert n_words == {2 + len(g["objects"][0]["attributes"])}
        assert len(phrases(rejected)) == len(phrases(chosen)) + ("added" in p["injected"])


def test_coco_instances_as_dense_annotations(world):
    graphs = from_coco(world / "instances_train.json")
    sg = load_graphs(world / "scene_graph_train.json")
    assert [sorted(o["name"] for o in g["objects"]) for g in graphs] == [sorted(o["name"] for o in g["objects"]) for g in sg]
    assert all(o["attributes"].get("color") for g in graphs for o in g["objects"])
    assert all((g["width"], g["height"]) == (96, 96) for g in graphs)


def test_contamination_guard_refuses_eval_images(world, tmp_path):
    from mmhallu_eval.world.fixtures import build_pope_fixture  # noqa: F401  (POPE files point at world images below)

    graphs = load_graphs(world / "scene_graph_train.json")
    pairs = finer_pairs(graphs, world / "images", {"obj": 1})
    # an "evaluation" POPE file that reuses two training images
    qfile = tmp_path / "coco_pope_random.json"
    used = sorted({p["images"][0] for p in pairs})[:2]
    qfile.write_text("".join(json.dumps({"question_id": i, "image": u, "text": "Is there a star?", "label": "no"}) + "\n" for i, u in enumerate(used)))
    kept, dropped = drop_contaminated(pairs, ["pope"], {"pope": {"data": str(qfile)}})
    assert dropped == sum(1 for p in pairs if p["images"][0] in used) and dropped > 0
    assert not {p["images"][0] for p in kept} & set(used)


def test_pairs_build_cli_with_exclusion(world, tmp_path):
    qfile = tmp_path / "coco_pope_random.json"
    img = world / "images" / load_graphs(world / "scene_graph_train.json")[0]["file_name"]
    qfile.write_text(json.dumps({"question_id": 1, "image": str(img), "text": "Is there a star?", "label": "no"}) + "\n")
    out = tmp_path / "pairs.jsonl"
    proc = subprocess.run(
        [*CLI, "pairs", "build", "--strategy", "finer,povid", "--annotations", str(world / "scene_graph_train.json"), "--images", str(world / "images"),
         "--out", str(out), "--exclude-eval-tasks", "pope", "--task-arg", f"pope.data={qfile}", "--mix", "obj=1,attr=1,rel=1,wh=1"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["dropped_contaminated"] >= 2 and meta["counts"]["povid/caption"] > 0
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(rows) == meta["n_pairs"] and all(str(img) not in r["images"] for r in rows)
    assert set(rows[0]) >= {"images", "prompt", "chosen", "rejected", "strategy", "pair_type"}


def test_a_wrong_images_folder_is_an_error_before_any_pairs_are_written(world, tmp_path):
    out = tmp_path / "pairs.jsonl"
    proc = mmhallu("pairs", "build", "--strategy", "finer", "--annotations", str(world / "scene_graph_train.json"),
                           "--images", str(world / "images" / "train"), "--out", str(out))
    first = world / "images" / "train" / load_graphs(world / "scene_graph_train.json")[0]["file_name"]  # train/train/…: one level too deep
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: none of the ") and f"(first: {first})" in proc.stderr
    assert "--images" in proc.stderr and not out.exists()


def test_pairs_are_never_written_over_or_into_what_the_build_reads(world, tmp_path):
    """--out equal to the annotations file, or inside the images folder, is refused before anything is written (the
    annotations were once replaced by the pairs)."""
    annotations = tmp_path / "instances_train.json"
    annotations.write_bytes((world / "instances_train.json").read_bytes())
    before = annotations.read_bytes()
    args = [*CLI, "pairs", "build", "--strategy", "caption_swap", "--annotations", str(annotations), "--images", str(world / "images")]
    for out, says in ((annotations, "is one of this command's inputs"), (world / "images" / "pairs.jsonl", "is inside the input folder")):
        proc = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stderr.strip().startswith(f"error: --out {out} {says}"), proc.stderr
    assert annotations.read_bytes() == before and not (world / "images" / "pairs.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instances_train.json"]


def test_hadpo_from_a_runs_failures(shared_benchmarks, tmp_path):
    from mmhallu_eval import get_task
    from report_helpers import write_run

    base = shared_benchmarks / "chair/opera_captions"
    spec = get_task("chair")
    samples, match = spec.answers(base / "llava-1.5/greedy.jsonl", {"gt": str(base / "gt_objects.json")})
    texts = match.texts
    for s in samples:
        s.images = [f"/data/coco/train2014/COCO_train2014_{s.metadata['image_id']:012d}.jpg"]
    run = write_run(tmp_path / "run", "chair", samples[:60], texts)
    pope = get_task("pope")
    psamples = pope.load({"data": str(shared_benchmarks / "pope/coco_pope_adversarial.json")})[:30]
    write_run(run, "pope", psamples, {s.id: "Yes" for s in psamples})
    pairs = hadpo_pairs(run)
    captions = [p for p in pairs if p["pair_type"] == "caption"]
    yesno = [p for p in pairs if p["pair_type"] == "yesno"]
    assert captions and yesno and len(yesno) == sum(1 for s in psamples if s.target == "no")
    normalizer = __import__("mmhallu_tasks.chair.normalize", fromlist=["x"]).normalizer_for(None)
    for p in captions:
        chosen = p["chosen"][0]["content"][0]["text"]
        assert not set(normalizer.caption_words(chosen).categories) & set(p["hallucinated"])
        assert p["rejected"][0]["content"][0]["text"] != chosen
    assert all(p["chosen"][0]["content"][0]["text"] == "No" for p in yesno)
    # a run folder that is damaged is named (a missing samples.jsonl read as "no failures", a record without id a KeyError)
    import pytest

    from mmhallu_eval.task import TaskError

    lines = (run / "pope" / "samples.jsonl").read_text().splitlines()
    (run / "pope" / "samples.jsonl").write_text("\n".join([lines[0], json.dumps({k: v for k, v in json.loads(lines[1]).items() if k != "id"})]))
    with pytest.raises(TaskError, match=r"pope/samples.jsonl:2: a record needs its id and prompt as text"):
        hadpo_pairs(run)
    (run / "pope" / "samples.jsonl").unlink()
    with pytest.raises(TaskError, match=r"pope/samples.jsonl: not found, so pope's answers are missing"):
        hadpo_pairs(run)
    with pytest.raises(TaskError, match="no <task>/result.json inside"):
        hadpo_pairs(tmp_path)
    with pytest.raises(TaskError, match="folder not found"):
        hadpo_pairs(tmp_path / "gone")
    from mmhallu_eval.train.strategies.hadpo import _references

    refs = tmp_path / "captions.json"
    for data, why in (([1], 'not a COCO captions file \\(no "annotations" list\\)'), ({"annotations": [{"caption": "A cat."}]}, r"annotations\[0\] needs an image_id")):
        refs.write_text(json.dumps(data))
        with pytest.raises(TaskError, match=f"--reference-captions {refs}: {why}"):
            _references(str(refs))
    refs.write_text(json.dumps({"annotations": [{"image_id": 7, "caption": "A cat."}, {"image_id": 7, "caption": "A dog."}]}))
    assert _references(str(refs)) == {7: "A cat."}


def test_hadpo_pairs_a_reasoning_models_answer_not_its_reasoning(shared_benchmarks, tmp_path):
    """A reasoning model's record keeps the raw response (reasoning and all) beside the `answer` that was scored:
    the rejected side of its pair is that answer, as a model without reasoning would have written it."""
    from mmhallu_eval import get_task
    from report_helpers import write_run

    pope = get_task("pope")
    samples = pope.load({"data": str(shared_benchmarks / "pope/coco_pope_adversarial.json")})[:20]
    run = write_run(tmp_path / "run", "pope", samples, {s.id: "<think>a dog would fit here</think>\n\nYes" for s in samples})
    pairs = hadpo_pairs(run)
    assert pairs and len(pairs) == sum(1 for s in samples if s.target == "no")
    assert all(p["rejected"][0]["content"][0]["text"] == "Yes" and p["chosen"][0]["content"][0]["text"] == "No" for p in pairs)


def test_mix_from_a_runs_weakest_slices(shared_benchmarks, world, tmp_path):
    """POPE's adversarial accuracy (and its gap to random) speaks for the obj pairs; a run without such a task, a
    folder that is not a run, or none at all is refused rather than read as the default mix."""
    import pytest

    from mmhallu_eval import get_task
    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.mix import mix_from_run
    from report_helpers import write_run

    pope = get_task("pope")
    samples = [s for split in ("random", "adversarial") for s in pope.load({"data": str(shared_benchmarks / f"pope/coco_pope_{split}.json")})[:40]]
    run = write_run(tmp_path / "run", "pope", samples, {s.id: "Yes" for s in samples})  # always yes: half right on both splits
    weights, evidence = mix_from_run(run)
    assert evidence["evidence"]["obj"] == {"pope/adversarial/accuracy": 0.5, "pope random−adversarial accuracy gap": 0.0}
    assert weights["obj"] == weights["attr"] == pytest.approx(0.25, abs=1e-4)  # error 0.5 each (no evidence: 0.5 too)
    # right on every random question, always yes on adversarial: obj's error is 1 − 0.5 plus the 0.5 gap, so obj
    # weighs 1.0 against 0.5 for each of the three types without evidence: 1.0 / 2.5 and 0.5 / 2.5
    answers = {s.id: "Yes" if s.group == "adversarial" or s.target == "yes" else "No" for s in samples}
    weights, evidence = mix_from_run(write_run(tmp_path / "weak", "pope", samples, answers))
    assert evidence["evidence"]["obj"] == {"pope/adversarial/accuracy": 0.5, "pope random−adversarial accuracy gap": 0.5}
    assert weights == {"obj": 0.4, "attr": 0.2, "rel": 0.2, "wh": 0.2}
    chair = get_task("chair")
    base = shared_benchmarks / "chair/opera_captions"
    csamples, match = chair.answers(base / "llava-1.5/greedy.jsonl", {"gt": str(base / "gt_objects.json")})
    captions_only = write_run(tmp_path / "captions", "chair", csamples[:5], match.texts)
    assert not any(mix_from_run(captions_only)[1]["evidence"].values())
    out = tmp_path / "pairs.jsonl"
    proc = mmhallu("pairs", "build", "--strategy", "finer", "--annotations", str(world / "scene_graph_train.json"),
                           "--images", str(world / "images"), "--mix-from-run", str(captions_only), "--out", str(out))
    assert proc.returncode == 2 and "none of its tasks measures a pair type" in proc.stderr and "mme, pope" in proc.stderr and not out.exists()
    for folder, why in ((tmp_path / "gone", "folder not found"), (world, "no <task>/result.json inside")):
        with pytest.raises(TaskError, match=why):
            mix_from_run(folder)


def test_povid_noised_image_pairs(world, tmp_path):
    from PIL import Image

    from mmhallu_eval.train.strategies.povid import noised_image_pairs

    graphs = load_graphs(world / "scene_graph_train.json")[:4]
    seen = []

    def answer(paths):
        seen.extend(paths)
        return ["The image shows a large green ring." for _ in paths]

    pairs = noised_image_pairs(graphs, world / "images", answer, tmp_path / "noised", strength=0.6)
    assert len(seen) == 4 and all(Image.open(p).size == (96, 96) for p in seen)
    clean = Image.open(world / "images" / graphs[0]["file_name"]).convert("RGB")
    noisy = Image.open(seen[0]).convert("RGB")
    assert clean.tobytes() != noisy.tobytes()
    assert all(p["pair_type"] == "noised" and p["noise_strength"] == 0.6 for p in pairs)
    assert all(not p["images"][0].startswith(str(tmp_path)) for p in pairs), "the pair shows the clean image"


def test_contrast_pairs_small_objects_against_their_absent_partners(world):
    """Each small object X gets "Is there a X?" Yes ≻ No and, on the same image, "Is there a P?" No ≻ Yes for its most
    co-occurring class P when P is absent; nothing for X whose partners are all present; same pairs from COCO instances."""
    from collections import Counter

    from mmhallu_eval.annotations import cooccurrence
    from mmhallu_eval.prompts import SHORT_ANSWER
    from mmhallu_eval.train.strategies.contrast import contrast_pairs

    graphs = load_graphs(world / "scene_graph_train.json")
    pairs = contrast_pairs(graphs, world / "images", small_quantile=0.3)
    by_image = {g["image_id"]: g for g in graphs}
    areas = sorted(o["bbox"][2] * o["bbox"][3] / 96 / 96 for g in graphs for o in g["objects"])
    limit = areas[round(0.3 * len(areas)) - 1]
    co = cooccurrence(graphs)
    top = {c: min(n, key=lambda k: (-n[k], k)) for c, n in co.items()}
    assert pairs and all(_question(p).endswith(SHORT_ANSWER) and p["strategy"] == "contrast" for p in pairs)
    expected = Counter()
    for g in graphs:
        names = {o["name"] for o in g["objects"]}
        for o in g["objects"]:
            if o["bbox"][2] * o["bbox"][3] / 96 / 96 <= limit and o["name"] in top and top[o["name"]] not in names:
                expected[(g["image_id"], o["name"], top[o["name"]])] += 1
    got = Counter()
    answers = lambda p: (p["chosen"][0]["content"][0]["text"], p["rejected"][0]["content"][0]["text"])
    for p in pairs:
        names = {o["name"] for o in by_image[p["image_id"]]["objects"]}
        assert p["relative_area"] <= round(limit, 5) and p["small_object"] in names
        if p["polarity"] == "pos":
            assert answers(p) == ("Yes", "No") and f"a {p['small_object']} in" in _question(p)
        else:
            assert answers(p) == ("No", "Yes") and p["slots"]["object"] not in names
            got[(p["image_id"], p["small_object"], p["slots"]["object"])] += 1
    assert got == expected and sum(p["polarity"] == "pos" for p in pairs) == sum(expected.values())
    # COCO instances (image sizes from the file's `images`; the scene graphs above have none, so the sizes came from
    # the image files' headers) give the same pairs
    coco = contrast_pairs(from_coco(world / "instances_train.json"), world / "images", small_quantile=0.3)
    assert [(_question(p), answers(p), p["image_id"]) for p in coco] == [(_question(p), answers(p), p["image_id"]) for p in pairs]
    # every object is small at quantile 1; more partners, more negatives; sentence answers on request
    assert len(contrast_pairs(graphs, world / "images", small_quantile=1.0)) > len(pairs)
    assert len(contrast_pairs(graphs, world / "images", 0.3, partners=3)) > len(pairs)
    sentence = contrast_pairs(graphs, world / "images", 0.3, answer_style="sentence")
    assert [_question(p) + SHORT_ANSWER for p in sentence] == [_question(p) for p in pairs]
    assert all(answers(p)[0].startswith("No, there is no ") for p in sentence if p["polarity"] == "neg")


def test_contrast_pairs_bad_input(world, tmp_path):
    import pytest

    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.strategies.contrast import contrast_pairs

    graphs = load_graphs(world / "scene_graph_train.json")
    with pytest.raises(TaskError, match="small_quantile"):
        contrast_pairs(graphs, world / "images", small_quantile=0)
    with pytest.raises(TaskError, match="bbox"):
        contrast_pairs([{**g, "objects": [{k: v for k, v in o.items() if k != "bbox"} for o in g["objects"]]} for g in graphs], world / "images")
    with pytest.raises(TaskError, match=r"image \d+: .*not found"):
        contrast_pairs(graphs, tmp_path)


def test_pairs_build_cli_contrast_and_loop_strategies(world, tmp_path):
    import pytest

    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.loop import LoopConfig, run_loop

    out = tmp_path / "pairs.jsonl"
    proc = mmhallu("pairs", "build", "--strategy", "contrast", "--annotations", str(world / "instances_train.json"), "--images", str(world / "images"),
                           "--out", str(out), "--answer-style", "short", "--small-quantile", "0.5", "--partners", "2")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["counts"]["contrast/obj"] == meta["n_pairs"] > 0
    bad = mmhallu("pairs", "build", "--strategy", "contrast,hallu", "--annotations", "x", "--images", "y", "--out", str(out))
    assert bad.returncode == 2 and "unknown pair strategy 'hallu'" in bad.stderr
    with pytest.raises(TaskError, match="hadpo read"):
        run_loop(LoopConfig(model="m", train_annotations="a", train_images="i", tasks=["pope"], out=tmp_path / "loop", strategies=["finer", "hadpo"]))
    with pytest.raises(TaskError, match="partnerz.*belong to none"):
        run_loop(LoopConfig(model="m", train_annotations="a", train_images="i", tasks=["pope"], out=tmp_path / "loop", strategies=["contrast"],
                            pair_options={"partnerz": 2}))
    with pytest.raises(TaskError, match="'learning_rte' is neither.*Did you mean: learning_rate"):
        run_loop(LoopConfig(model="m", train_annotations="a", train_images="i", tasks=["pope"], out=tmp_path / "loop", strategies=["contrast"],
                            train={"learning_rte": 1e-5}))
    with pytest.raises(TaskError, match="no loss type 'apo_zer' \\(did you mean apo_zero\\?\\)"):  # TRL itself checks it at the first step
        run_loop(LoopConfig(model="m", train_annotations="a", train_images="i", tasks=["pope"], out=tmp_path / "loop", strategies=["contrast"],
                            train={"loss_type": ["apo_zer", "sft"]}))
    assert not (tmp_path / "loop").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "README.md").write_text("mine")
    with pytest.raises(TaskError, match=r"--out .*notes holds files that are not a loop's \(README.md; no loop.json\)"):
        run_loop(LoopConfig(model="m", train_annotations="a", train_images="i", tasks=["pope"], out=other, strategies=["contrast"]))
    model = tmp_path / "model"
    model.mkdir()
    with pytest.raises(TaskError, match="and the model's folder .* overlap"):
        run_loop(LoopConfig(model=str(model), train_annotations="a", train_images="i", tasks=["pope"], out=model / "loop", strategies=["contrast"]))
    images = tmp_path / "train-images"
    images.mkdir()
    (images / "a.png").write_bytes(b"png")
    for out in (images / "loop", tmp_path):  # a new folder inside the images, and a loop folder holding them
        with pytest.raises(TaskError, match="and the training data .*train-images overlap"):
            run_loop(LoopConfig(model="m", train_annotations="a", train_images=str(images), tasks=["pope"], out=out, strategies=["contrast"]))
    assert sorted(p.name for p in other.iterdir()) == ["README.md"] and not any(model.iterdir()) and [p.name for p in images.iterdir()] == ["a.png"]
    damaged = tmp_path / "damaged-loop"
    damaged.mkdir()
    for record in ("[]", '{"stages": 5}', '{"stages": {"base": "done"}}'):
        (damaged / "loop.json").write_text(record)
        with pytest.raises(TaskError, match="loop.json: not a loop record .*restore it, or give --out a new folder"):
            run_loop(LoopConfig(model="m", train_annotations="a", train_images="i", tasks=["pope"], out=damaged, strategies=["contrast"]))
        assert (damaged / "loop.json").read_text() == record


def test_povid_descriptions_in_reading_order(world):
    """"reading": objects named top to bottom (thirds of the image), left to right; "annotation" (the default) keeps
    the file's order."""
    import pytest

    from mmhallu_eval.task import TaskError

    graphs = load_graphs(world / "scene_graph_train.json")
    by_image = {g["image_id"]: g for g in graphs}
    chosen = lambda p: p["chosen"][0]["content"][0]["text"].removeprefix("The image shows ").rstrip(".").replace(" and ", ", ").split(", ")
    assert povid_pairs(graphs, world / "images", seed=0) == povid_pairs(graphs, world / "images", seed=0, order="annotation")
    for order in ("reading", "annotation"):
        for p in povid_pairs(graphs, world / "images", seed=0, order=order):
            objs = by_image[p["image_id"]]["objects"]
            if order == "reading":
                # the world puts one object per cell of a 3×3 grid: reading order is row-major over cells
                cell = lambda o: (int((o["bbox"][1] + o["bbox"][3] / 2) // 32), int((o["bbox"][0] + o["bbox"][2] / 2) // 32))
                objs = sorted(objs, key=cell)
            assert [ph.split()[-1] for ph in chosen(p)] == [o["name"] for o in objs] and p["object_order"] == order
    with pytest.raises(TaskError, match="object order"):
        povid_pairs(graphs, world / "images", order="random")


def test_caption_swap_pairs_differ_in_one_class_in_place(world, tmp_path):
    """chosen = the truth in reading order in each template; rejected = the same caption with one object's class
    replaced in its place by an absent class (swap: the adversarial choice; swap_partner: a small object's most
    co-occurring class); the CLI builds them too."""
    import pytest

    from mmhallu_eval.annotations import cooccurrence
    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.strategies.caption_swap import caption_swap_pairs

    graphs = load_graphs(world / "scene_graph_train.json")
    by_image = {g["image_id"]: g for g in graphs}
    templates = ("A picture with {objects}.", "There is {names} in this image.")
    pairs = caption_swap_pairs(graphs, world / "images", templates=templates, small_quantile=0.5, seed=0)
    text = lambda turn: turn[0]["content"][0]["text"]
    kinds = {p["kind"] for p in pairs}
    assert kinds == {"swap", "swap_partner"}
    assert len([p for p in pairs if p["kind"] == "swap"]) == 2 * len([g for g in graphs if g["objects"]])
    co = cooccurrence(graphs)
    for p in pairs:
        g = by_image[p["image_id"]]
        present = {o["name"] for o in g["objects"]}
        old, new = p["swapped"]["object"]
        chosen, rejected = text(p["chosen"]), text(p["rejected"])
        assert old in present and new not in present and p["strategy"] == "caption_swap" and _question(p) == "Please describe this image in detail."
        assert chosen.startswith(("A picture with", "There is")) and chosen.startswith(templates[p["template"]].split("{")[0])
        a, b = chosen.split(), rejected.split()
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1  # one word, in place
        assert [x for x, y in zip(a, b) if x != y][0].rstrip(",.") == old and [y for x, y in zip(a, b) if x != y][0].rstrip(",.") == new
        if p["kind"] == "swap_partner":
            assert new == max(sorted(co[old]), key=lambda c: co[old][c])
    # add_partner: the small object's most co-occurring class named right after it, nothing else changed
    added = caption_swap_pairs(graphs, world / "images", kinds=("add_partner",), templates=templates, small_quantile=0.5, seed=0)
    assert added and {p["kind"] for p in added} == {"add_partner"}
    for p in added:
        g = by_image[p["image_id"]]
        present = {o["name"] for o in g["objects"]}
        new, after = p["added"]["object"], p["added"]["after"]
        assert new not in present and after in present and new == max(sorted(co[after]), key=lambda c: co[after][c])
        prefix, suffix = templates[p["template"]].split("{objects}" if p["template"] == 0 else "{names}")
        items = lambda t: re.split(r", | and ", t[len(prefix):len(t) - len(suffix)])
        a, b = items(text(p["chosen"])), items(text(p["rejected"]))
        i = next(i for i, x in enumerate(a) if x.split()[-1] == after)
        assert b == a[:i + 1] + [a[i].rsplit(" ", 1)[0] + " " + new] + a[i + 1:]
    with_attrs = [p for p in pairs if p["template"] == 0][0]
    assert any(c in text(with_attrs["chosen"]) for c in ("red", "green", "blue", "yellow", "purple", "orange"))
    with pytest.raises(TaskError, match="template"):
        caption_swap_pairs(graphs, world / "images", templates=("A picture.",))
    with pytest.raises(TaskError, match="kinds"):
        caption_swap_pairs(graphs, world / "images", kinds=("inject",))
    out = tmp_path / "caps.jsonl"
    proc = mmhallu("pairs", "build", "--strategy", "caption_swap", "--annotations", str(world / "scene_graph_train.json"), "--images", str(world / "images"),
                           "--swap-kinds", "swap", "--caption-template", "There is {names} in this image.", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {r["kind"] for r in rows} == {"swap"} and all(text(r["chosen"]).startswith("There is a") for r in rows)


def test_mix_weights_and_shares_out_of_range_are_refused(world, tmp_path):
    import pytest

    from mmhallu_eval.task import TaskError

    args = [*CLI, "pairs", "build", "--annotations", str(world / "scene_graph_train.json"), "--images", str(world / "images"), "--out", str(tmp_path / "p")]
    for extra, why in ((["--strategy", "finer", "--mix", "obj=-1"], "--mix 'obj=-1': a weight is a finite number, 0 or more"),
                       (["--strategy", "finer", "--mix", "obj=inf"], "--mix 'obj=inf': a weight is a finite number, 0 or more"),
                       (["--strategy", "finer", "--mix", "obj=0,attr=0"], "at least one pair type needs a weight above 0"),
                       (["--strategy", "finer", "--mix", "obj=1,obj=2"], "--mix 'obj=1,obj=2': obj is given twice; give each pair type once"),
                       (["--strategy", "finer", "--neg-ratio", "2"], "neg_ratio 2.0: choose a share in [0, 1]"),
                       (["--strategy", "povid", "--noise-strength", "1.5"], "noise_strength 1.5: choose a level in (0, 1)")):
        proc = subprocess.run([*args, *extra], capture_output=True, text=True)
        assert proc.returncode == 2 and why in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    with pytest.raises(TaskError, match="at least one type needs a weight above 0"):
        finer_pairs(load_graphs(world / "scene_graph_train.json"), world / "images", {"obj": 0.0})
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("built, message", [
    (None, "pair strategy 'toy_faulty' returned NoneType, not a list of pairs"),
    ([{"id": "p0", "images": ["a.png"], "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]}],
       "chosen": "No"}], "pair strategy 'toy_faulty': pair 0 ('p0'): a preference pair needs images, prompt, chosen, rejected (missing rejected)"),
    (["pair"], "pair strategy 'toy_faulty': pair 0: a preference pair is an object with images, prompt, chosen, rejected (got str)"),
])
def test_a_strategys_pairs_are_checked_as_it_builds_them(built, message, monkeypatch):
    """A strategy that returns something other than pairs in TRL's layout is named with the pair when it builds,
    not met as a line of pairs.jsonl when training starts (or as a TypeError for a strategy returning None)."""
    from dataclasses import dataclass

    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train import strategy

    @dataclass
    class NoOptions:
        pass

    toy = strategy.Strategy(name="toy_faulty", description="returns what it is given", options=NoOptions, build=lambda ctx, o: built)
    monkeypatch.setitem(strategy._REGISTRY, "toy_faulty", toy)
    with pytest.raises(TaskError, match="^" + re.escape(message)):
        strategy.build_pairs(["toy_faulty"], strategy.PairContext(), {"toy_faulty": NoOptions()})


def test_relative_image_names_are_read_from_the_folder_they_were_written_in(world, shared_benchmarks, tmp_path, monkeypatch):
    """Pairs built, or a run evaluated, in one folder and used from another: a relative image name is the writer's
    (pairs.meta.json's and the run manifest's `cwd`), not the current folder's."""
    import os
    import shutil

    from mmhallu_eval import get_task
    from mmhallu_eval.task import TaskError
    from mmhallu_eval.train.pairs import read_pairs
    from report_helpers import write_run

    built_in, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    built_in.mkdir()
    elsewhere.mkdir()
    shutil.copytree(world / "images", built_in / "images")
    shutil.copy(world / "scene_graph_train.json", built_in)
    proc = subprocess.run([*CLI, "pairs", "build", "--strategy", "finer", "--annotations", "scene_graph_train.json", "--images", "images",
                           "--out", "pairs.jsonl"], capture_output=True, text=True, cwd=built_in)
    assert proc.returncode == 0, proc.stderr
    written = [json.loads(line) for line in (built_in / "pairs.jsonl").read_text().splitlines()]
    assert not os.path.isabs(written[0]["images"][0])  # the file keeps the names as built: portable with its folder
    monkeypatch.chdir(elsewhere)
    pairs = read_pairs(built_in / "pairs.jsonl")
    assert [p["images"] for p in pairs] == [[str(built_in / im) for im in p["images"]] for p in written]
    # moved with its images (the folder it was built in gone): read from the current folder, as written
    moved = tmp_path / "moved"
    shutil.move(built_in, moved)
    monkeypatch.chdir(moved)
    assert [p["images"] for p in read_pairs("pairs.jsonl")] == [p["images"] for p in written]
    monkeypatch.chdir(elsewhere)
    with pytest.raises(TaskError, match=re.escape(f"image not found: {written[0]['images'][0]} (a relative name is read from the folder the "
                                                  f"pairs were built in, {built_in}, or else from the current folder)")):
        read_pairs(moved / "pairs.jsonl")

    # a run evaluated in `moved` with relative image names, its failures paired from another folder
    pope = get_task("pope")
    samples = pope.load({"data": str(shared_benchmarks / "pope/coco_pope_adversarial.json")})[:6]
    for s in samples:
        s.images = [written[0]["images"][0]]
    run = write_run(tmp_path / "run", "pope", samples, {s.id: "Yes" for s in samples})
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "cwd": str(moved)}))
    assert {im for p in hadpo_pairs(run) for im in p["images"]} == {str(moved / written[0]["images"][0])}
