"""The shapes world (determinism, formats) and benchmarks built from annotations (POPE sampling invariants)."""
import hashlib
import json
from collections import Counter

from mmhallu_eval.annotations import cooccurrence, from_coco, load_graphs
from mmhallu_eval.benchmarks.pope import build_pope
from mmhallu_eval.benchmarks.qa import build_finer, build_mme, build_mmhal
from mmhallu_eval.world.shapes import CLASSES, PARTNERS, build_world


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(folder).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def test_world_is_deterministic_and_splits_disjoint(tmp_path):
    a = build_world(tmp_path / "a", seed=3, n_train=10, n_test=6)
    b = build_world(tmp_path / "b", seed=3, n_train=10, n_test=6)
    c = build_world(tmp_path / "c", seed=4, n_train=10, n_test=6)
    assert _digest(a) == _digest(b) != _digest(c)
    train = {i["id"] for i in json.loads((a / "instances_train.json").read_text())["images"]}
    test = {i["id"] for i in json.loads((a / "instances_test.json").read_text())["images"]}
    assert train and test and not train & test


def test_train_split_does_not_depend_on_test_size(tmp_path):
    """The demo model is trained on the train split alone, so a larger test split may reuse the shipped model."""
    from mmhallu_eval.demo import DemoSettings, _shipped_matches

    a = build_world(tmp_path / "a", seed=3, n_train=10, n_test=4)
    b = build_world(tmp_path / "b", seed=3, n_train=10, n_test=9)
    for name in ("instances_train.json", "captions_train.json", "scene_graph_train.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    train_images = sorted(p.relative_to(a) for p in (a / "images" / "train").iterdir())
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in train_images)
    assert _shipped_matches(DemoSettings()) and _shipped_matches(DemoSettings(n_test=500))
    assert not _shipped_matches(DemoSettings(n_train=300)) and not _shipped_matches(DemoSettings(seed=1))


def test_world_formats_load_with_pycocotools(world):
    from pycocotools.coco import COCO

    coco = COCO(str(world / "instances_train.json"))
    caps = COCO(str(world / "captions_train.json"))
    assert len(coco.getImgIds()) == 24 and {c["name"] for c in coco.loadCats(coco.getCatIds())} == set(CLASSES)
    assert all(len(caps.getAnnIds(imgIds=[i])) == 5 for i in coco.getImgIds())
    graphs = load_graphs(world / "scene_graph_train.json")
    assert [sorted(o["name"] for o in g["objects"]) for g in graphs] == [sorted(o["name"] for o in g["objects"]) for g in from_coco(world / "instances_train.json")]
    assert all(1 <= len(g["objects"]) <= 5 for g in graphs)
    synonyms = (world / "synonyms.txt").read_text().splitlines()
    assert [line.split(", ")[0] for line in synonyms] == list(CLASSES)


def test_world_has_its_cooccurrence_prior(tmp_path):
    world = build_world(tmp_path / "w", seed=0, n_train=150, n_test=1)
    co = cooccurrence(load_graphs(world / "scene_graph_train.json"))
    hits = sum(co[c].most_common(1)[0][0] == PARTNERS[c] for c in CLASSES if co.get(c))
    assert hits >= 12, "most classes should co-occur most with their partner"


def test_pope_builder_follows_pope_sampling(tmp_path):
    world = build_world(tmp_path / "w", seed=1, n_train=2, n_test=80)
    paths = build_pope(world / "instances_test.json", tmp_path / "pope", name="shapes", n_images=30, min_objects=3, seed=0)
    graphs = {g["file_name"]: g for g in from_coco(world / "instances_test.json")}
    all_graphs = list(graphs.values())
    freq = Counter(o for g in all_graphs for o in {x["name"] for x in g["objects"]})
    co = cooccurrence(all_graphs)
    for split, path in paths.items():
        rows = [json.loads(l) for l in path.read_text().splitlines()]
        by_image: dict[str, list] = {}
        for r in rows:
            by_image.setdefault(r["image"], []).append(r)
        assert len(by_image) == min(30, sum(len({o["name"] for o in g["objects"]}) >= 3 for g in all_graphs))
        for image, qs in by_image.items():
            present = {o["name"] for o in graphs[image]["objects"]}
            labels = Counter(q["label"] for q in qs)
            assert labels == {"yes": 3, "no": 3}
            objs = {q["label"]: [] for q in qs}
            for q in qs:
                name = q["text"].removeprefix("Is there a ").removesuffix(" in the image?")
                objs[q["label"]].append(name)
            assert set(objs["yes"]) <= present and not set(objs["no"]) & present
            absent = [c for c in CLASSES if c not in present]
            if split == "popular":
                assert objs["no"] == sorted(absent, key=lambda c: (-freq[c], c))[:3]
            if split == "adversarial":
                score = {c: sum(co.get(p, {}).get(c, 0) for p in present) for c in absent}
                assert [score[n] for n in objs["no"]] == sorted(score.values(), reverse=True)[:3]
        assert [r["question_id"] for r in rows] == list(range(1, len(rows) + 1))


def test_mme_finer_mmhal_builders_load_in_their_tasks(world, tmp_path):
    from mmhallu_eval import get_task

    build_mme(world / "scene_graph_test.json", tmp_path / "mme")
    mme = get_task("mme").load({"data": str(tmp_path / "mme"), "images": str(world / "images")})
    assert {s.group for s in mme} == {"existence", "count", "position", "color"}
    assert all(__import__("pathlib").Path(s.images[0]).is_file() for s in mme)
    build_finer(world / "scene_graph_test.json", tmp_path / "finer")
    finer = get_task("finer_comprecap").load({"data": str(tmp_path / "finer"), "images": str(world / "images")})
    from mmhallu_eval.measure import unit_table

    spec = get_task("finer_comprecap")
    table = unit_table(spec.measure, [{"id": s.id, "group": s.group, "metadata": s.metadata, "correct": True, "parsed": 0} for s in finer])
    assert len(table.keys) * 2 == len(finer)  # every question in a validated positive/negative pair
    build_mmhal(world / "scene_graph_test.json", tmp_path / "mmhal.json", n_items=16)
    items = get_task("mmhal").load({"data": str(tmp_path / "mmhal.json"), "images": str(world / "images")})
    assert [s.group for s in items[:8]] == ["attribute", "adversarial", "comparison", "counting", "relation", "environment", "holistic", "other"]
    assert all(__import__("pathlib").Path(s.images[0]).is_file() for s in items)


def test_finer_on_the_first_images_writes_the_full_builds_first_rows(world, tmp_path):
    """`n_images` (the demo asks about 500 of its 1,000 test images) keeps the questions a build on every image writes
    for those images: distractors and absent objects still come from all of them."""
    import pytest
    from cli_in_process import mmhallu

    from mmhallu_eval.errors import TaskError

    graphs = load_graphs(world / "scene_graph_test.json")
    first = {g["file_name"] for g in graphs[:5]}
    full = build_finer(world / "scene_graph_test.json", tmp_path / "all")
    part = build_finer(world / "scene_graph_test.json", tmp_path / "part", n_images=5)
    assert set(part) == set(full)
    for setting, path in part.items():
        rows = path.read_text().splitlines()
        whole = full[setting].read_text().splitlines()
        assert rows and rows == [r for r in whole if json.loads(r)["image_filename"] in first]
        assert len(rows) < len(whole)
    with pytest.raises(TaskError, match="n_images 0"):
        build_finer(world / "scene_graph_test.json", tmp_path / "none", n_images=0)
    proc = mmhallu("build", "finer", "--annotations", str(world), "--out", str(tmp_path / "cli"), "--n-images", "5")
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "cli").iterdir()} == {p.name: p.read_bytes() for p in part.values()}
