"""CHAIR: the OPERA chair.py normalisation and metrics, reproduced exactly; ground truth with pycocotools."""
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmhallu_tasks.chair.normalize import Normalizer, Vocabulary, normalizer_for
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Figures printed by OPERA's chair.py (CHAIRs, CHAIRi, Recall, Len = 0.01·tokens/caption) on the shared
# caption logs with shared/benchmarks/chair/opera_captions/gt_objects.json as its ground truth.
OFFICIAL = {
    "instructblip/beam5.jsonl": (0.556, 0.15788146279949558, 0.75, 1.05304),
    "instructblip/greedy.jsonl": (0.588, 0.236782647989155, 0.6944444444444444, 1.09268),
    "instructblip/ours.jsonl": (0.464, 0.14194112503643252, 0.7319121447028424, 0.9257000000000001),
    "llava-1.5/beam5.jsonl": (0.488, 0.13875724065297526, 0.8031496062992126, 0.9569200000000001),
    "llava-1.5/greedy.jsonl": (0.45, 0.12727752838658568, 0.8038057742782152, 0.96872),
    "llava-1.5/ours.jsonl": (0.446, 0.1275663837941418, 0.7952755905511811, 0.92714),
    "minigpt4/beam5.jsonl": (0.306, 0.09523809523809523, 0.6299212598425197, 0.7338000000000001),
    "minigpt4/greedy.jsonl": (0.318, 0.09855862874951304, 0.6299212598425197, 0.84666),
    "minigpt4/ours.jsonl": (0.262, 0.09526135808500244, 0.6148293963254593, 0.63368),
    "shikra/beam5.jsonl": (0.504, 0.13298743855816494, 0.786745406824147, 0.95166),
    "shikra/greedy.jsonl": (0.558, 0.15396909962706445, 0.7821522309711286, 1.0158),
    "shikra/ours.jsonl": (0.362, 0.12077478161792632, 0.6948818897637795, 0.73698),
}

# caption → (object words as matched, their categories, tokens after phrase merging)
TRICKY = [
    ("A man riding a motor bike next to two dogs.", ["man", "dog"], ["person", "dog"], 10),  # " motor bike" quirk
    ("A toilet seat and a chair in the bathroom, the seat is up.", ["toilet", "chair"], ["toilet", "chair"], 14),
    ("There is a toilet and a seat.", ["toilet"], ["toilet"], 8),  # toilet + seat → every seat dropped
    ("Two baby elephants and an adult giraffe.", ["elephant", "giraffe"], ["elephant", "giraffe"], 6),
    ("A passenger jet flies over a passenger train.", ["jet", "train"], ["airplane", "train"], 7),
    ("Wine glasses on a dining table with hot dogs.", ["wine glass", "table", "hot dog"], ["wine glass", "dining table", "hot dog"], 8),
    ("A teddy bear sits on a couch near a sofa.", ["teddy bear", "couch", "sofa"], ["teddy bear", "couch", "couch"], 10),
    ("The kitten plays with a laptop computer and a cell phone.", ["kitten", "laptop computer", "cell phone"], ["cat", "laptop", "cell phone"], 10),
    ("A bow tie and a bowl.", ["tie", "bowl"], ["tie", "bowl"], 6),
    ("People are walking, and a man rides a bicycle.", ["people", "man", "bicycle"], ["person", "person", "bicycle"], 11),
    ("A cupcake and a cheesecake.", ["cupcake"], ["cake"], 6),  # "  cheesecake" (double space) never matches
]


@pytest.fixture(scope="module")
def normalizer() -> Normalizer:
    return normalizer_for(None)


@pytest.mark.parametrize("caption,words,categories,n_tokens", TRICKY)
def test_tricky_captions(normalizer, caption, words, categories, n_tokens):
    got = normalizer.caption_words(caption)
    assert (got.words, got.categories, got.n_tokens) == (words, categories, n_tokens)


def test_synonym_quirks_kept():
    vocab = Vocabulary.from_file(None)
    assert " motor bike" in vocab.objects and "motor bike" not in vocab.objects
    assert vocab.to_category["sofa"] == "couch" and vocab.to_category["bow"] == "tie"
    assert len(vocab.categories() - {""}) == 80


def test_per_caption_identical_to_official(normalizer, shared_benchmarks):
    reference = json.loads((FIXTURES / "chair_opera_llava15_greedy_reference.json").read_text())["rows"]
    gt = json.loads((shared_benchmarks / "chair/opera_captions/gt_objects.json").read_text())
    rows = [json.loads(l) for l in (shared_benchmarks / "chair/opera_captions/llava-1.5/greedy.jsonl").read_text().splitlines()]
    assert len(rows) == len(reference) == 500
    for row, (image_id, generated, hallucinated, n_words) in zip(rows, reference):
        got = normalizer.caption_words(row["caption"])
        assert row["image_id"] == image_id
        assert got.categories == generated and got.n_tokens == n_words
        assert [c for c in got.categories if c not in set(gt[str(image_id)])] == hallucinated


def test_tagging_stops_where_no_tag_can_matter(shared_benchmarks, tmp_path):
    """Once every word's lemmas are in the table, captions are tagged only up to their last word whose tag can change
    an object, a phrase or the token count; the words found are those of tagging every token, caption by caption."""
    from mmhallu_tasks.chair.lemmas import Lemmas

    fresh = Normalizer(Vocabulary.from_file(None))
    fresh.lemmas = Lemmas(tmp_path / "lemmas.json")  # an empty table: every word is tagged
    captions = [json.loads(l)["caption"] for f in ("llava-1.5/greedy.jsonl", "minigpt4/beam5.jsonl")
                for l in (shared_benchmarks / "chair/opera_captions" / f).read_text().splitlines()] + [c for c, *_ in TRICKY]
    full = [fresh.tagged(c) for c in captions]
    assert all(len(tags) == len(tokens) for tokens, tags in full)
    fresh.learn({w for tokens, _ in full for w in tokens})
    lazy = [fresh.tagged(c) for c in captions]
    assert sum(len(t) for _, t in lazy) < 0.8 * sum(len(t) for _, t in full)
    for (tokens, tags), (_, some) in zip(full, lazy):
        assert some == tags[:len(some)]
        assert fresh.words_of(tokens, some) == fresh.words_of(tokens, tags)
    assert fresh.needs_tag("dogs") and not fresh.needs_tag("the")  # "dogs" as an adjective stays "dogs"


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_metrics_match_official(shared_benchmarks, name):
    from mmhallu_eval import get_task
    from mmhallu_eval.scoring import build_result, score_texts

    base = shared_benchmarks / "chair/opera_captions"
    spec = get_task("chair")
    samples, match = spec.answers(base / name, {"gt": str(base / "gt_objects.json")})
    texts = match.texts
    m = build_result(spec, spec.parser(None), score_texts(spec, spec.parser(None), samples, texts))["metrics"]
    chair_s, chair_i, recall, len_ = OFFICIAL[name]
    assert m["chair_s"] == pytest.approx(chair_s, abs=1e-12)
    assert m["chair_i"] == pytest.approx(chair_i, abs=1e-12)
    assert m["recall"] == pytest.approx(recall, abs=1e-12)
    assert m["avg_len"] == pytest.approx(100 * len_, abs=1e-9)
    assert m["n"] == 500


def test_score_chair_cli(shared_benchmarks, tmp_path):
    base = shared_benchmarks / "chair/opera_captions"
    out = tmp_path / "r.json"
    proc = mmhallu("score", "chair", "--answers", str(base / "llava-1.5/greedy.jsonl"), "--gt", str(base / "gt_objects.json"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["metrics"]["chair_i"] == pytest.approx(OFFICIAL["llava-1.5/greedy.jsonl"][1], abs=1e-12)
    assert result["ci"]["chair_s"][0] < result["metrics"]["chair_s"] < result["ci"]["chair_s"][1]
    samples = [json.loads(l) for l in out.with_name("r.samples.jsonl").read_text().splitlines()]
    assert len(samples) == 500 and samples[0]["parsed"]["hallucinated"] is not None


def test_unknown_duplicate_and_invalid_captions_are_reported_as_for_pope(shared_benchmarks, tmp_path):
    """Unknown ids (no ground truth), an image captioned twice and a caption that is not text: listed, exit 2;
    with --allow-missing the rest is scored and the counts are in result.json."""
    captions = tmp_path / "caps.jsonl"
    rows = [{"image_id": 757, "caption": "An elephant."}, {"image_id": 1, "caption": "A dog."}, {"image_id": 2, "caption": "A cat."},
            {"image_id": 757, "caption": "A giraffe."}, {"image_id": 1029, "caption": None}]
    captions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [*CLI, "score", "chair", "--answers", str(captions), "--gt", str(shared_benchmarks / "chair/opera_captions/gt_objects.json"), "--out", str(tmp_path / "r.json")]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 2 and "2 answer ids not in the data (first: 1 (line 2), 2 (line 3))" in proc.stderr
    assert "1 duplicate answer ids (first: 757 (line 4))" in proc.stderr and "1 answers that are not text (first: 1029 (line 5) (NoneType))" in proc.stderr
    proc = subprocess.run([*args, "--allow-missing"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["n"] == 1 and (result["unknown_answers"], result["duplicate_answers"], result["invalid_answers"]) == (2, 1, 1)


def test_missing_nltk_resources_say_what_to_do(tmp_path):
    env = {**os.environ, "NLTK_DATA": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    code = ("from pathlib import Path; import mmhallu_eval.nltk_resources as r; r.BUNDLED = Path('/nonexistent'); "
            "from mmhallu_tasks.chair.normalize import check_nltk; check_nltk()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    if proc.returncode == 0:
        pytest.skip("NLTK resources are installed system-wide here")
    assert "mmhallu setup nltk" in proc.stderr and "NLTK_DATA" in proc.stderr


def test_shipped_nltk_resources_score_chair_identically(shared_benchmarks, tmp_path):
    """Without any NLTK data of the user's, the resources shipped in the package give the same CHAIR result."""
    base = shared_benchmarks / "chair/opera_captions"
    args = ["score", "chair", "--answers", str(base / "llava-1.5/greedy.jsonl"), "--gt", str(base / "gt_objects.json")]
    bare = {**os.environ, "NLTK_DATA": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    shipped = subprocess.run([*CLI, *args, "--out", str(tmp_path / "a" / "r.json")], capture_output=True, text=True, env=bare, cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    full = mmhallu(*args, "--out", str(tmp_path / "b" / "r.json"))
    assert full.returncode == 0, full.stderr
    a, b = (json.loads((tmp_path / d / "r.json").read_text()) for d in "ab")
    assert a["metrics"] == b["metrics"] and a["ci"] == b["ci"]
    assert (tmp_path / "a" / "r.samples.jsonl").read_text() == (tmp_path / "b" / "r.samples.jsonl").read_text()


def test_ground_truth_from_coco_files(coco_fixture, normalizer):
    from mmhallu_tasks.chair.groundtruth import build_ground_truth, images_with_instances

    with_instances = images_with_instances(coco_fixture)
    instances = json.loads((coco_fixture / "instances_val2014.json").read_text())
    assert len(with_instances) == len(instances["images"]) - 1  # the last image has no instances
    names = {c["id"]: c["name"] for c in instances["categories"]}
    gt = build_ground_truth(coco_fixture, with_instances, normalizer, "default")
    for image_id, cats in gt.items():
        expected = {names[a["category_id"]] for a in instances["annotations"] if a["image_id"] == image_id}
        assert set(cats) == expected  # the captions name the same objects
    again = build_ground_truth(coco_fixture, list(with_instances)[:2], normalizer, "default")
    assert again == {k: gt[k] for k in list(with_instances)[:2]}


def test_damaged_coco_files_are_named_before_pycocotools_reads_them(coco_fixture, normalizer, tmp_path):
    """pycocotools failed with a bare KeyError on an annotation of an unknown category or a caption without text,
    and read an instances file without annotations as one with none (ground truth from the captions alone)."""
    import shutil

    from mmhallu_eval import TaskError
    from mmhallu_tasks.chair.groundtruth import build_ground_truth

    instances = json.loads((coco_fixture / "instances_val2014.json").read_text())
    captions = json.loads((coco_fixture / "captions_val2014.json").read_text())
    ids = [im["id"] for im in instances["images"]]
    for name, data, why in (
        ("instances_val2014.json", {**instances, "annotations": [{**instances["annotations"][0], "category_id": 999}]},
         "annotations[0]: category_id 999 is not among the categories"),
        ("instances_val2014.json", {k: v for k, v in instances.items() if k != "annotations"}, 'a COCO instances file needs "annotations" as a list of objects'),
        ("captions_val2014.json", {**captions, "annotations": [{"image_id": ids[0]}]}, "annotations[0] needs an image_id and a caption (text)"),
    ):
        folder = tmp_path / f"coco-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(coco_fixture, folder)
        (folder / name).write_text(json.dumps(data))
        with pytest.raises(TaskError, match=re.escape(f"{folder / name}: {why}")):
            build_ground_truth(folder, ids, normalizer, "default")


def test_caption_objects_join_instance_ground_truth(tmp_path, normalizer):
    """Objects named only in the reference captions count as ground truth, as in the original CHAIR."""
    from mmhallu_eval.world.fixtures import build_coco_fixture
    from mmhallu_tasks.chair.groundtruth import build_ground_truth

    folder = build_coco_fixture(tmp_path / "coco", n_images=2)
    caps = json.loads((folder / "captions_val2014.json").read_text())
    caps["annotations"][0]["caption"] = "A giraffe stands near a bench."
    (folder / "captions_val2014.json").write_text(json.dumps(caps))
    gt = build_ground_truth(folder, [caps["annotations"][0]["image_id"]], normalizer, "default")
    assert {"giraffe", "bench"} <= set(gt[caps["annotations"][0]["image_id"]])


def test_run_chair_end_to_end(tiny_llava, coco_fixture, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [*CLI, "run", "--model", str(tiny_llava), "--tasks", "chair", "--out", str(out), "--no-progress", "--max-new-tokens", "24",
         "--task-arg", f"chair.coco_annotations={coco_fixture}", "--task-arg", f"chair.images={coco_fixture / 'val2014'}",
         "--task-arg", "chair.n_images=4", "--task-arg", "chair.seed=3"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "chair/result.json").read_text())
    assert result["n"] == 4 and result["parser"] == "chair-opera" and result["generation"]["max_new_tokens"] == 24
    assert {"chair_s", "chair_i", "recall", "avg_len", "n"} <= set(result["metrics"])
    ids = json.loads((out / "chair/image_ids.json").read_text())
    assert len(ids) == 4
    sample = json.loads((out / "chair/samples.jsonl").read_text().splitlines()[0])
    assert {"mentions", "hallucinated", "covered"} <= set(sample["parsed"])
    # the written captions score to the same numbers, and the id list reproduces the sample set
    rescored = tmp_path / "rescored.json"
    proc = mmhallu("score", "chair", "--answers", str(out / "chair/captions.jsonl"), "--coco-annotations", str(coco_fixture), "--out", str(rescored))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(rescored.read_text())["metrics"] == result["metrics"]


ODD_TEXTS = [
    "\"Quoted\" words, 'single quotes' and ``tex quotes''.", "It's a dog's life; they're gonna wanna go!",
    "A (small) [red] {box} -- with... ellipses?", "Prices: $5.99, 20% off & 3/4 cups.", "e-mail me at a@b.com: ok",
    "Ünïcödé café — naïve façade", "cannot, d'ye, gimme, lemme, more'n, 'tis, 'twas", "  leading and trailing   spaces  ",
    "numbers 1,000.5 and 2024 and 3rd", "!!! ??? ;;; :::", "tab\tseparated\nnew line", "",
]


def test_tokenizer_and_tagger_identical_to_nltk(normalizer, shared_benchmarks):
    import nltk

    base = shared_benchmarks / "chair/opera_captions"
    captions = [json.loads(l)["caption"] for f in ("llava-1.5/greedy.jsonl", "instructblip/beam5.jsonl") for l in (base / f).read_text().splitlines()]
    for text in captions + ODD_TEXTS + [t.lower() for t in ODD_TEXTS]:
        tokens = nltk.word_tokenize(text)
        assert normalizer.tokenize(text) == tokens, text
        assert normalizer.tag(tokens) == [t for _, t in nltk.pos_tag(tokens)], text


def test_word_tokenizer_identical_to_nltk_on_generated_text():
    """The tokenizer that skips substitutions which cannot match equals NLTK's on strings dense in the characters and
    words its patterns look for (quotes, periods, brackets, dashes, contractions, non-ASCII case variants)."""
    from hypothesis import given, settings, strategies as st
    from nltk.tokenize import NLTKWordTokenizer

    from mmhallu_tasks.chair.normalize import _WordTokenizer

    ours, nltk_own = _WordTokenizer(NLTKWordTokenizer), NLTKWordTokenizer()
    pieces = st.sampled_from(["a", "B", "x", " ", "  ", "\t", "\n", ".", "..", ",", ":", ";", "'", "''", '"', "`", "``", "«", "»", "“", "”",
                              "‘", "’", "„", "(", ")", "[", "]", "{", "}", "<", ">", "-", "--", "\u2013", "?", "!", "*", "@", "#", "$",
                              "%", "&", "3", "can", "not", "Can", "NOT", "gon", "na", "wan", "'s", "'ll", "n't", "N'T", "'t", "is",
                              "was", "d", "'ye", "more", "'n", "gim", "me", "lem", "got", "ta", "ı", "İ", "ſ", "K"])

    @settings(max_examples=3000, deadline=None, derandomize=True)
    @given(st.lists(pieces, max_size=20).map("".join))
    def same(text):
        assert ours.tokenize(text) == nltk_own.tokenize(text)

    same()
