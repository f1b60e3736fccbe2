"""The scene-graph oracle judge for MMHal-style items on synthetic data: its ratings follow the official 0–6 scale
and reach the official rating parser unchanged."""
import json
import sys

import pytest

from mmhallu_eval.benchmarks.qa import build_mmhal
from mmhallu_eval.world.shapes import build_world
from mmhallu_tasks.mmhal.oracle import SceneGraphOracle
from mmhallu_tasks.mmhal.task import mmhal_official
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    build_world(out, seed=5, n_train=4, n_test=60)
    items = json.loads(build_mmhal(out / "scene_graph_test.json", out / "mmhal.json", n_items=48).read_text())
    return out, items, SceneGraphOracle(out / "scene_graph_test.json", out / "synonyms.txt")


def _rating(oracle, item, answer):
    return mmhal_official(oracle.rate(item, answer))


def test_standard_answers_rate_as_informative_without_hallucination(world):
    _, items, oracle = world
    assert {i["question_type"] for i in items} == {"attribute", "adversarial", "comparison", "counting", "relation", "environment", "holistic", "other"}
    for item in items:
        reply = oracle.rate(item, item["gt_answer"])
        expected = 4 if item["question_type"] == "environment" else 5  # the background answer has no checkable fact
        assert mmhal_official(reply) >= expected, (item, reply)
        assert "no hallucination" in reply


def _item(items, qtype):
    return next(i for i in items if i["question_type"] == qtype)


def test_hallucinations_rate_below_three(world):
    out, items, oracle = world
    graphs = {g["file_name"]: g for g in json.loads((out / "scene_graph_test.json").read_text())["images"]}
    attr = _item(items, "attribute")
    asked = attr["question"].split("the ")[1].rstrip("?")
    g = graphs[attr["image_src"]]
    true = {o["attributes"]["color"] for o in g["objects"] if o["name"] == asked}
    wrong_color = next(c for c in ("red", "green", "blue", "yellow", "purple", "orange") if c not in true)
    assert _rating(oracle, attr, next(iter(true))) == 5  # a bare right colour fully answers the question
    assert _rating(oracle, attr, wrong_color) == 0  # a bare wrong colour is a claim about the asked object
    assert _rating(oracle, attr, f"The {asked} is {wrong_color}.") == 0

    adv = _item(items, "adversarial")
    missing = adv["question"].split("the ")[1].split(" in")[0]
    assert _rating(oracle, adv, "red") == 0  # answering the colour claims the absent object exists
    assert _rating(oracle, adv, f"The {missing} is red.") == 0
    assert _rating(oracle, adv, f"There is no {missing} in the image.") == 5
    # a plural or a synonym of an absent class is still that class
    present = {o["name"] for o in graphs[adv["image_src"]]["objects"]}
    if "circle" not in present:
        assert "no circle in the image" in oracle.rate(adv, "I see two discs.")

    count = _item(items, "counting")
    n = len(graphs[count["image_src"]]["objects"])
    assert _rating(oracle, count, f"There are {n} objects.") == 5
    assert _rating(oracle, count, f"There are {n + 1} objects.") == 0

    rel = _item(items, "relation")
    predicate = next(p for p in ("left of", "right of", "above", "below") if p in rel["gt_answer"])
    opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[predicate]
    assert _rating(oracle, rel, predicate) == 5
    assert _rating(oracle, rel, opposite) == 0


def test_size_comparison_is_checked(world):
    out, items, oracle = world
    for item in (i for i in items if i["question_type"] == "comparison"):
        a, b = item["question"][len("Which is larger, the "):-1].split(" or the ")
        if item["gt_answer"] == "They are the same size.":
            assert _rating(oracle, item, f"The {a} is larger.") < 3
        else:
            bigger = a if item["gt_answer"].startswith(f"The {a} ") else b
            smaller = b if bigger == a else a
            assert _rating(oracle, item, f"The {bigger} is larger.") == 5
            assert _rating(oracle, item, f"The {smaller} is larger.") < 3


def test_unknown_image_and_missing_synonyms_are_clear_errors(world, tmp_path):
    out, items, oracle = world
    from mmhallu_eval import TaskError

    with pytest.raises(TaskError, match="no scene graph for image 'elsewhere.png'"):
        oracle.rate({**items[0], "image_src": "elsewhere.png", "image_id": "elsewhere"}, "red")
    with pytest.raises(TaskError, match="nope.txt: synonyms file not found"):
        SceneGraphOracle(out / "scene_graph_test.json", tmp_path / "nope.txt")


def test_synonyms_may_name_classes_no_image_holds(world, tmp_path):
    """A world subset or COCO's list on a few images: such a class is in the vocabulary, and claiming it is a
    hallucination."""
    out, items, _ = world
    syn = tmp_path / "syn.txt"
    syn.write_text("circle, disc\ngiraffe, camelopard\n")
    oracle = SceneGraphOracle(out / "scene_graph_test.json", syn)
    item = next(i for i in items if i["question_type"] == "counting")
    reply = oracle.rate(item, "I see a camelopard.")
    assert "giraffe" in reply and int(reply.rsplit("Rating: ", 1)[1]) <= 2


def test_score_cli_with_the_oracle(world, tmp_path):
    out, items, _ = world
    filled = [dict(i, model_answer=i["gt_answer"] if k % 2 == 0 else "There is a giant red kite and a blue moon.") for k, i in enumerate(items)]
    answers = tmp_path / "response.json"
    answers.write_text(json.dumps(filled))
    result = tmp_path / "r.json"
    proc = mmhallu("score", "mmhal", "--answers", str(answers), "--out", str(result), "--judge-backend", "scene-graph-oracle",
                           "--judge-scene-graph", str(out / "scene_graph_test.json"), "--judge-synonyms", str(out / "synonyms.txt"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(result.read_text())
    assert data["judge"]["kind"] == "scene-graph-oracle" and data["metrics"]["n"] == len(items)
    assert 0.2 < data["metrics"]["hallucination_rate"] <= 0.5
    proc = mmhallu("score", "mmhal", "--answers", str(answers), "--out", str(result), "--judge-backend", "scene-graph-oracle")
    assert proc.returncode == 2 and "--judge-scene-graph FILE" in proc.stderr
