"""Arbitrary bytes and JSON into every loader, answers reader and parser: each gives a result or a clear user error
(`UserError`, which every command prints as one `error:` line with exit 2) — never another exception. Plus the CLI
itself on hostile answer files: exit 0 or 2, one `error:` line, no traceback."""
import json
import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmhallu_eval import get_task
from mmhallu_eval.annotations import load_graphs
from mmhallu_eval.errors import UserError
from mmhallu_eval.scoring import match_answers

FUZZ = settings(max_examples=int(os.environ.get("MMHALLU_FUZZ_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=20,
)
keys = st.sampled_from(["question_id", "id", "image", "text", "label", "category", "image_id", "caption", "qtype", "question", "choice1",
                        "choice2", "choice3", "choice4", "choice5", "gt_index", "setting", "model_answer", "objects", "file_name", "images"])
rows = st.dictionaries(keys, json_values, max_size=8)
raw_bytes = st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8")) | st.lists(rows, max_size=5).map(
    lambda rs: "".join(json.dumps(r) + "\n" for r in rs).encode())


@pytest.fixture(scope="module")
def amber_pipeline(shared_benchmarks, tmp_path_factory):
    """The stand-in spaCy pipeline for AMBER's synonym check, built once for all examples of this module."""
    from parity_cases import amber_vectors

    return amber_vectors(shared_benchmarks / "amber", tmp_path_factory.mktemp("spacy") / "vectors")


def _only_user_errors(fn, *args):
    try:
        fn(*args)
    except UserError:
        pass


@FUZZ
@given(data=raw_bytes)
def test_pope_question_files(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("pope")
    (folder / "coco_pope_random.json").write_bytes(data)
    _only_user_errors(get_task("pope").load, {"data": str(folder / "coco_pope_random.json")})


@FUZZ
@given(data=raw_bytes)
def test_mme_lists_and_result_folders(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("mme")
    (folder / "existence.txt").write_bytes(data)
    _only_user_errors(get_task("mme").load, {"data": str(folder)})
    _only_user_errors(get_task("mme").answers, folder)


@FUZZ
@given(data=raw_bytes, suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_finer_rows(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("finer") / f"multi_obj{suffix}"
    path.write_bytes(data)
    _only_user_errors(get_task("finer_comprecap").load, {"data": str(path)})
    _only_user_errors(get_task("finer_comprecap").answers, path)


@FUZZ
@given(data=raw_bytes, suffix=st.sampled_from([".jsonl", ".json"]))
def test_chair_caption_files(tmp_path_factory, shared_benchmarks, data, suffix):
    path = tmp_path_factory.mktemp("chair") / f"caps{suffix}"
    path.write_bytes(data)
    _only_user_errors(get_task("chair").answers, path, {"gt": str(shared_benchmarks / "chair/opera_captions/gt_objects.json")})


@FUZZ
@given(data=raw_bytes | st.lists(rows, max_size=3).map(lambda rs: json.dumps(rs).encode()))
def test_mmhal_templates(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("mmhal") / "response.json"
    path.write_bytes(data)
    _only_user_errors(get_task("mmhal").load, {"data": str(path)})
    _only_user_errors(get_task("mmhal").answers, path)


@FUZZ
@given(data=raw_bytes | json_values.map(lambda v: json.dumps(v).encode()))
def test_annotations(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("ann") / "scene_graph.json"
    path.write_bytes(data)
    _only_user_errors(load_graphs, path)


object_ids = st.integers(0, 3) | st.sampled_from(["1", ""]) | json_values
scene_objects = st.fixed_dictionaries({}, optional={
    "id": object_ids, "name": st.sampled_from(["cat", "dog", "kite", ""]) | json_values,
    "attributes": st.dictionaries(st.sampled_from(["color", "size"]), st.sampled_from(["red", "tiny", "large"]) | json_values, max_size=2) | json_values,
    "bbox": st.lists(st.floats(-5, 100) | json_values, min_size=3, max_size=5) | json_values,
})
scene_relations = st.fixed_dictionaries({}, optional={
    "subject": object_ids, "object": object_ids, "predicate": st.sampled_from(["above", "left of", "below", "near"]) | json_values})
scene_images = st.fixed_dictionaries({}, optional={
    "image_id": st.integers(0, 3) | json_values, "file_name": st.sampled_from(["a.png", "b.png", "c.png"]) | json_values,
    "width": st.sampled_from([96, 0, -1, "wide"]) | json_values, "height": st.sampled_from([96, 0.5]) | json_values,
    "objects": st.lists(scene_objects, max_size=4) | json_values, "relations": st.lists(scene_relations, max_size=4) | json_values,
})


@FUZZ
@given(graphs=st.lists(scene_images, max_size=4))
def test_scene_graphs_near_the_format_build_or_fail_clearly(tmp_path_factory, graphs):
    """Scene graphs close to the format (the right keys, some of them damaged) through every builder and the FINER
    pair strategy: each builds or gives a user error (a relation without a predicate, an unknown object id, a bad
    box were KeyErrors and TypeErrors in the builders)."""
    from mmhallu_eval.benchmarks.qa import build_finer, build_mme, build_mmhal
    from mmhallu_eval.train.strategies.finer import finer_pairs

    folder = tmp_path_factory.mktemp("sg")
    path = folder / "scene_graph.json"
    path.write_text(json.dumps({"images": graphs}))
    for build in (build_mme, build_finer, build_mmhal):
        _only_user_errors(build, path, folder / build.__name__)
    try:
        loaded = load_graphs(path)
    except UserError:
        return
    finer_pairs(loaded, folder, {"obj": 1.0, "attr": 1.0, "rel": 1.0, "wh": 1.0}, both_polarities=True)


coco_ids = st.integers(1, 3) | json_values
coco_files = st.fixed_dictionaries({}, optional={
    "images": st.lists(st.fixed_dictionaries({}, optional={"id": coco_ids, "file_name": st.sampled_from(["a.jpg", "b.jpg", ""]) | json_values}), max_size=4),
    "categories": st.lists(st.fixed_dictionaries({}, optional={"id": coco_ids, "name": st.sampled_from(["cat", "dog", "kite"]) | json_values}), max_size=4),
    "annotations": st.lists(st.fixed_dictionaries({}, optional={
        "image_id": coco_ids, "category_id": coco_ids, "bbox": st.lists(st.floats(-5, 100) | json_values, min_size=3, max_size=5) | json_values,
        "attributes": st.dictionaries(st.sampled_from(["color"]), st.sampled_from(["red"]) | json_values, max_size=1) | json_values}), max_size=8),
})


@FUZZ
@given(data=coco_files)
def test_coco_instances_near_the_format_build_or_fail_clearly(tmp_path_factory, data):
    """COCO instances files close to the format through `build pope` and the scene-graph builders: each builds or
    gives a user error."""
    from mmhallu_eval.benchmarks.pope import build_pope
    from mmhallu_eval.benchmarks.qa import build_finer, build_mme

    folder = tmp_path_factory.mktemp("coco")
    path = folder / "instances_val.json"
    path.write_text(json.dumps(data))
    _only_user_errors(build_pope, path, folder / "pope")
    for build in (build_mme, build_finer):
        _only_user_errors(build, path, folder / build.__name__)


_DROP = object()


def _mutated(row: dict, drop: bool = True) -> st.SearchStrategy:
    """A real row with up to three of its fields replaced by arbitrary JSON or (`drop`) left out: the rest intact,
    so that a draw gets past the first check to the code behind it."""
    if not row:
        return st.just(row)
    damage = (json_values | st.just(_DROP)) if drop else json_values
    return st.lists(st.sampled_from(sorted(row)), max_size=3, unique=True).flatmap(
        lambda hit: st.fixed_dictionaries({k: damage if k in hit else st.just(v) for k, v in row.items()})).map(
        lambda d: {k: v for k, v in d.items() if v is not _DROP})


def _draw_rows(data, rows: list[dict]) -> list[dict]:
    """Some of `rows` (any, in any order, repeats allowed), each kept or `_mutated`."""
    return list(data.draw(st.lists(st.sampled_from(range(len(rows))), max_size=len(rows)).flatmap(
        lambda idx: st.tuples(*(st.just(rows[i]) | _mutated(rows[i]) for i in idx)))))


def _scored_in_process(task: str, path, options: dict, parser: str | None = None) -> None:
    """What `mmhallu score TASK --allow-missing` does with an answers file that carries its questions."""
    spec = get_task(task)
    typed = spec.parse_options(options)
    _score_matched(spec, typed, *spec.read_answers(path, typed), parser)


def _score_matched(spec, typed, samples, match, parser: str | None = None) -> None:
    """What `mmhallu score --allow-missing` does once the answers are matched to their questions."""
    from mmhallu_eval.scoring import ResultBuilder, check_units, iter_scored_texts

    check_units(spec, samples)
    builder = ResultBuilder(spec)
    builder.unanswered(match.unanswered(samples))
    for record in iter_scored_texts(spec, spec.parser(parser), samples, match.texts, typed):
        builder.add(record)
    builder.result(spec.parser(parser))


@FUZZ
@given(data=st.data())
def test_official_answer_files_near_the_format_score_or_fail_clearly(tmp_path_factory, shared_benchmarks, finer_fixture, data):
    """Real answer rows of HallusionBench's and FINER's official formats, some fields dropped or damaged, some rows
    left out (a question set or a pair cut short): each file scores or gives a user error."""
    hb = json.loads((shared_benchmarks / "hallusionbench" / "HallusionBench_result_sample.json").read_text())[:12]
    finer = [{**json.loads(line), "text": "B"} for line in (finer_fixture / "multi_obj.jsonl").read_text().splitlines()][:8]
    folder = tmp_path_factory.mktemp("answers")
    for task, rows, options, parser in (("hallusionbench", hb, {"data": str(shared_benchmarks / "hallusionbench" / "HallusionBench.json")}, "yesno"),
                                        ("finer_comprecap", finer, {}, None)):
        picked = _draw_rows(data, rows)
        path = folder / f"{task}.json{'l' if task.startswith('finer') else ''}"
        path.write_text("".join(json.dumps(r) + "\n" for r in picked) if task.startswith("finer") else json.dumps(list(picked)))
        _only_user_errors(_scored_in_process, task, path, options, parser)


@FUZZ
@given(data=st.data(), task=st.sampled_from(["pope", "mme", "hallusionbench", "amber", "chair"]))
def test_lmms_eval_logs_near_the_format_score_or_fail_clearly(tmp_path_factory, shared_benchmarks, amber_pipeline, data, task):
    """Real lmms-eval log lines (POPE, MME, HallusionBench, AMBER's descriptions, COCO captions for CHAIR), some fields
    dropped or damaged, some lines left out or repeated: each log scores or gives a user error."""
    import gzip
    from pathlib import Path

    from mmhallu_eval.interop import read_lmms_eval_log
    interop = shared_benchmarks / "interop" / "lmms-eval"
    logs = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "lmms_eval"
    name, options = {
        "pope": ("pope", {"data": str(interop)}),
        "mme": ("mme", {"data": str(shared_benchmarks / "mme" / "questions")}),
        "hallusionbench": ("hallusion_bench_image", {"data": str(shared_benchmarks / "hallusionbench" / "HallusionBench.json")}),
        "amber": ("amber_g", {"data": str(shared_benchmarks / "amber"), "evaluation_type": "g"}),
        "chair": ("coco_cap_chair", {"gt": str(shared_benchmarks / "chair" / "opera_captions" / "gt_objects.json")}),
    }[task]
    if task == "pope":
        lines = (interop / "pope_b1_r1" / "20261202_040846_samples_pope.jsonl").read_text().splitlines()[:8]
    else:
        lines = gzip.decompress((logs / f"20261203_000000_samples_{name}.jsonl.gz").read_bytes()).decode().splitlines()[:8]
    if task == "amber":
        options["spacy_model"] = str(amber_pipeline)
    folder = tmp_path_factory.mktemp("lmms")
    rows = [json.loads(line) for line in lines]
    path = folder / f"samples_{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _draw_rows(data, rows)))
    spec = get_task(task)
    typed = spec.parse_options(options)

    def scored() -> None:
        samples, match, _, _ = read_lmms_eval_log(path, lambda: spec.load(typed), spec.capabilities.lmms_eval, spec.name, typed)
        _score_matched(spec, typed, samples, match, "yesno" if task == "hallusionbench" else None)

    _only_user_errors(scored)


@pytest.fixture(scope="module")
def vlmevalkit_cases(shared_benchmarks, tmp_path_factory) -> list[tuple]:
    """Per task (spec, options, its questions, VLMEvalKit's prediction rows for 8 of them), loaded once for all
    examples: the examples damage the rows, not the datasets."""
    import random

    from parity_cases import _vlmevalkit_rows

    folder = tmp_path_factory.mktemp("vlmevalkit-data")
    (folder / "coco_pope_random.json").write_text("".join((shared_benchmarks / "pope" / "coco_pope_random.json").read_text().splitlines(keepends=True)[:12]))
    cases = []
    for task, name, options in (("mme", "MME", {"data": str(shared_benchmarks / "mme" / "questions")}),
                                ("hallusionbench", "HallusionBench", {"data": str(shared_benchmarks / "hallusionbench" / "HallusionBench.json")}),
                                ("pope", "POPE", {"data": str(folder / "coco_pope_random.json")}),
                                ("amber", "AMBER", {"data": str(shared_benchmarks / "amber"), "evaluation_type": "d"})):
        spec = get_task(task)
        typed = spec.parse_options(options)
        loaded = spec.load(typed)
        picked_samples = loaded[:12] if task != "amber" else [s for s in loaded if s.target is not None][:12]
        rows = [{**r, "prediction": "Yes"} for r in _vlmevalkit_rows(task, picked_samples, random.Random(0))][:8]
        cases.append((spec, typed, name, tuple(loaded), rows))
    return cases


@FUZZ
@given(data=st.data())
def test_vlmevalkit_predictions_near_the_format_score_or_fail_clearly(tmp_path_factory, vlmevalkit_cases, data):
    """VLMEvalKit prediction rows of MME, HallusionBench, POPE and AMBER's yes/no questions (as its dump writes them),
    some cells dropped or damaged, some rows left out: each file scores or gives a user error."""
    from mmhallu_eval.interop import read_vlmevalkit

    folder = tmp_path_factory.mktemp("vlmevalkit")
    for spec, typed, name, loaded, rows in vlmevalkit_cases:
        picked = _draw_rows(data, rows)
        path = folder / f"TinyModel_{name}.json"
        path.write_text(json.dumps(list(picked)))

        def scored(spec=spec, typed=typed, path=path, loaded=loaded) -> None:
            samples, match, _, _ = read_vlmevalkit(path, lambda: list(loaded), spec.capabilities.vlmevalkit, spec.name)
            _score_matched(spec, typed, samples, match, "yesno" if spec.name == "hallusionbench" else None)

        _only_user_errors(scored)


@FUZZ
@given(data=st.data())
def test_pope_and_mmhal_files_near_the_format_load_or_fail_clearly(tmp_path_factory, shared_benchmarks, data):
    """POPE's question file and LLaVA's answers for it, and MMHal-Bench's response template, from real rows with some
    fields dropped or damaged and rows left out or repeated: each loads (and POPE scores) or gives a user error."""
    from mmhallu_eval.scoring import match_answers

    pope = shared_benchmarks / "pope"
    questions = [json.loads(line) for line in (pope / "coco_pope_random.json").read_text().splitlines()[:8]]
    answers = [json.loads(line) for line in (pope / "llava-1.5-13b" / "answers_llava-v1.5-13b.jsonl").read_text().splitlines()[:8]]
    template = json.loads((shared_benchmarks / "mmhal" / "responses_llava_7b.json").read_text())[:6]
    folder = tmp_path_factory.mktemp("near")
    (folder / "coco_pope_random.json").write_text("".join(json.dumps(r) + "\n" for r in _draw_rows(data, questions)))
    (folder / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _draw_rows(data, answers)))
    (folder / "mmhal.json").write_text(json.dumps(_draw_rows(data, template)))
    spec = get_task("pope")
    typed = spec.parse_options({"data": str(folder / "coco_pope_random.json")})

    def scored() -> None:
        samples = spec.load(typed)
        _score_matched(spec, typed, samples, match_answers(samples, folder / "answers.jsonl"))

    _only_user_errors(scored)
    _only_user_errors(get_task("mmhal").load, {"data": str(folder / "mmhal.json")})
    _only_user_errors(get_task("mmhal").answers, folder / "mmhal.json")


@FUZZ
@given(data=st.data())
def test_amber_and_chair_answers_near_the_format_score_or_fail_clearly(tmp_path_factory, shared_benchmarks, amber_pipeline, data):
    """AMBER's answers (descriptions and yes/no questions) and OPERA's CHAIR captions from real rows, fields dropped or damaged,
    rows left out or repeated: each scores or gives a user error."""
    amber_queries = json.loads((shared_benchmarks / "amber" / "query" / "query_discriminative.json").read_text())[:6]
    amber = [{"id": q["id"], "response": "Yes"} for q in amber_queries] + [
        {"id": i, "response": "A sky over a forest, two dogs and a car by the lake."} for i in (1, 2, 3)]
    chair = [json.loads(line) for line in (shared_benchmarks / "chair" / "opera_captions" / "llava-1.5" / "greedy.jsonl").read_text().splitlines()[:4]]
    folder = tmp_path_factory.mktemp("near")
    (folder / "amber.json").write_text(json.dumps(_draw_rows(data, amber)))
    (folder / "chair.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _draw_rows(data, chair)))
    _only_user_errors(_scored_in_process, "amber", folder / "amber.json", {"data": str(shared_benchmarks / "amber"), "evaluation_type": "a",
                                                                           "spacy_model": str(amber_pipeline)})
    _only_user_errors(_scored_in_process, "chair", folder / "chair.jsonl", {"gt": str(shared_benchmarks / "chair" / "opera_captions" / "gt_objects.json")})


@FUZZ
@given(data=st.data(), task=st.sampled_from(["pope", "mme"]))
def test_damaged_result_files_give_pages_or_clear_errors(tmp_path_factory, shared_benchmarks, data, task):
    """A scored POPE or MME result (result.json and its samples; MME's unit is an image's two questions), fields of
    the records and of the result dropped or damaged, records left out or repeated: `report`, `compare` against the
    intact result and `leaderboard` write their pages or give a user error."""
    from mmhallu_eval.files import atomic_write_json
    from mmhallu_eval.report.pages import compare_report, leaderboard, run_report
    from mmhallu_eval.scoring import ResultBuilder, iter_scored_texts, match_answers

    folder = tmp_path_factory.mktemp("pages")
    spec = get_task(task)
    if task == "pope":
        pope = shared_benchmarks / "pope"
        (folder / "questions.json").write_text("".join((pope / "coco_pope_random.json").read_text().splitlines(keepends=True)[:12]))
        typed = spec.parse_options({"data": str(folder / "questions.json")})
        samples = spec.load(typed)
        texts = match_answers(samples, pope / "llava-1.5-13b" / "answers_llava-v1.5-13b.jsonl").texts
    else:
        (folder / "mme").mkdir()
        lines = (shared_benchmarks / "mme" / "example_results_LaVIN" / "existence.txt").read_text().splitlines(keepends=True)[:8]
        (folder / "mme" / "existence.txt").write_text("".join(lines[:7]) + lines[7].rsplit("\t", 1)[0] + "\t<think>unfinished\n")
        typed = spec.parse_options({})
        samples, match = spec.answers(folder / "mme", typed)
        texts = match.texts
    builder = ResultBuilder(spec)
    records = list(iter_scored_texts(spec, spec.parser(None), samples, texts, typed))
    for record in records:
        builder.add(record)
    result = builder.result(spec.parser(None))
    for name, rows, res in (("intact", records, result), ("damaged", _draw_rows(data, records), data.draw(_mutated(result)))):
        atomic_write_json(folder / f"{name}.json", res)
        (folder / f"{name}.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _only_user_errors(run_report, folder / "damaged.json", folder / "damaged.html")
    _only_user_errors(compare_report, folder / "intact.json", folder / "damaged.json", folder / "compare", True)
    _only_user_errors(compare_report, folder / "damaged.json", folder / "intact.json", folder / "compare2", True)
    _only_user_errors(leaderboard, [folder / "intact.json", folder / "damaged.json"], folder / "board")
    run = folder / "run"
    (run / task).mkdir(parents=True)
    (run / task / "result.json").write_text(json.dumps(result))
    (run / task / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    manifest = {"schema_version": 1, "config": {"model": "m", "tasks": [task]}, "cwd": str(folder), "versions": {"mmhallu-eval": "1"},
                "model": {"model": "m", "backend": "transformers", "dtype": "float32", "device": "cpu", "model_fingerprint": "f"},
                "tasks": {task: {"data_roots": [str(folder)], "n_samples": len(records)}}, "started": "2026-01-01T00:00:00+00:00"}
    (run / "manifest.json").write_text(json.dumps(data.draw(_mutated(manifest))))
    _only_user_errors(run_report, run, folder / "run.html")
    _only_user_errors(compare_report, run, folder / "intact.json", folder / "compare3")


@FUZZ
@given(data=st.data())
def test_saved_mmhal_judge_replies_near_the_format_score_or_fail_clearly(tmp_path_factory, shared_benchmarks, data):
    """MMHal-Bench answers with saved judge replies (the official evaluation file: OpenAI responses), replies and
    answers damaged or left out: each scores or gives a user error."""
    items = json.loads((shared_benchmarks / "mmhal" / "responses_llava_7b.json").read_text())[:6]
    replies = [{"choices": [{"message": {"content": f"Explanation. Rating: {i}"}}]} for i in range(6)]
    folder = tmp_path_factory.mktemp("mmhal")
    (folder / "answers.json").write_text(json.dumps(_draw_rows(data, items)))
    (folder / "replies.json").write_text(json.dumps(_draw_rows(data, replies)))
    _only_user_errors(_scored_in_process, "mmhal", folder / "answers.json", {"judge_replies": str(folder / "replies.json")})


@FUZZ
@given(data=raw_bytes)
def test_answers_files(tmp_path_factory, pope_fixture, data):
    path = tmp_path_factory.mktemp("answers") / "answers.jsonl"
    path.write_bytes(data)
    samples = get_task("pope").load({"data": str(pope_fixture)})
    _only_user_errors(match_answers, samples, path)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=string.printable + "äöü\u00a0\u200bNOoYyEeSs", max_size=60))
def test_parsers_take_any_text(text):
    for name in ("pope", "mme", "finer_comprecap", "mmhal"):
        for parser in get_task(name).parsers.values():
            parser(text)


def test_cli_on_hostile_answer_files(tmp_path, pope_fixture):
    """Latin-1 bytes, a BOM, null texts, lists, deep nesting, a non-object line: one error line or a score, exit 0/2."""
    from typer.testing import CliRunner

    from mmhallu_eval.cli import build_app

    cases = {
        "latin1": "Is thére\n".encode("latin-1"),
        "bom": b"\xef\xbb\xbf" + json.dumps({"question_id": "random-1", "text": "Yes"}).encode() + b"\n",
        "null": json.dumps({"question_id": "random-1", "text": None}).encode() + b"\n",
        "list": json.dumps({"question_id": "random-1", "text": ["Yes"]}).encode() + b"\n",
        "deep": (b"[" * 100_000) + b"\n",
        "scalar": b"42\n",
        "empty": b"",
    }
    app = build_app([])
    for name, data in cases.items():
        answers = tmp_path / f"{name}.jsonl"
        answers.write_bytes(data)
        result = CliRunner().invoke(app, ["score", "pope", "--data", str(pope_fixture), "--answers", str(answers), "--out", str(tmp_path / name / "r.json")])
        assert result.exit_code in (0, 2), (name, result.output, result.exception)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (name, repr(result.exception))
        if result.exit_code == 2:
            assert [line for line in result.output.splitlines() if line.startswith("error: ")], (name, result.output)


@given(json_values | st.integers(), st.booleans(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_built_once_json_encoder_writes_what_json_dumps_writes(value, sort_keys, ensure_ascii):
    """samples.jsonl lines, cache keys, checksums and task hashes go through `json_encoder`: its text is
    `json.dumps`'s, byte for byte."""
    from mmhallu_eval.files import json_encoder

    assert json_encoder(sort_keys=sort_keys, ensure_ascii=ensure_ascii)(value) == json.dumps(value, ensure_ascii=ensure_ascii, sort_keys=sort_keys)


path_text = st.text(alphabet="ab./ \\:~é", max_size=12)


@settings(max_examples=400, deadline=None)
@given(name=path_text, folder=st.none() | path_text | path_text.map(lambda t: __import__("pathlib").Path(t)))
def test_an_image_path_is_pathlibs_text(name, folder):
    """Loaders join image names to folders with `resolve_image`; its text goes into the samples hash that `compare`
    checks, so the direct join of a plain file name must be pathlib's text byte for byte."""
    from pathlib import Path

    from mmhallu_eval.data import resolve_image

    expected = str(Path(name)) if folder is None or Path(name).is_absolute() else str(Path(folder) / Path(name))
    assert resolve_image(name, folder) == expected


@FUZZ
@given(data=st.data())
def test_amber_data_near_the_format_scores_or_fails_clearly(tmp_path_factory, shared_benchmarks, amber_pipeline, data):
    """A small AMBER data folder cut from the published one (three descriptions, three yes/no questions), its
    annotations, queries and relation.json entries damaged, queries left out or repeated: answers to it score
    (every evaluation type) or give a user error."""
    import shutil

    amber = shared_benchmarks / "amber"
    annotations = json.loads((amber / "annotations.json").read_text())
    queries = json.loads((amber / "query" / "query_all.json").read_text())
    picked = [0, 1, 2, 1004, 1005, 1006]
    rows = [{**annotations[i], "id": n} for n, i in enumerate(picked, 1)]
    asked = [{**queries[i], "id": n} for n, i in enumerate(picked, 1)]
    relation = json.loads((amber / "relation.json").read_text())
    words = {w for r in rows if r["type"] == "generative" for w in r["truth"] + r["hallu"]}
    folder = tmp_path_factory.mktemp("amber")
    (folder / "query").mkdir()
    for name in ("metrics.txt", "safe_words.txt"):
        shutil.copy(amber / name, folder / name)
    (folder / "annotations.json").write_text(json.dumps([data.draw(st.just(r) | _mutated(r)) for r in rows]))
    (folder / "query" / "query_all.json").write_text(json.dumps(_draw_rows(data, asked)))
    (folder / "relation.json").write_text(json.dumps(data.draw(_mutated({w: relation[w] for w in sorted(words)}))))
    answers = [{"id": n, "response": "There is a sky and a dog near the forest." if n <= 3 else "Yes"} for n in range(1, 7)]
    (folder / "answers.json").write_text(json.dumps(answers))
    for evaluation_type in ("a", "g", "d"):
        _only_user_errors(_scored_in_process, "amber", folder / "answers.json",
                          {"data": str(folder), "evaluation_type": evaluation_type, "spacy_model": str(amber_pipeline)})


@FUZZ
@given(data=st.data())
def test_hallusionbench_and_repope_data_near_the_format_load_or_fail_clearly(tmp_path_factory, shared_benchmarks, data):
    """HallusionBench.json and RePOPE's label files (with the POPE file they relabel beside them) from real rows,
    fields dropped or damaged, rows left out or repeated: each loads and scores yes-answers, or gives a user error."""
    from mmhallu_eval.scoring import AnswerMatch

    folder = tmp_path_factory.mktemp("data")
    hb = json.loads((shared_benchmarks / "hallusionbench" / "HallusionBench.json").read_text())[:10]
    (folder / "HallusionBench.json").write_text(json.dumps(_draw_rows(data, hb)))
    repope = shared_benchmarks / "repope"
    for kind in ("repope", "pope"):
        rows = [json.loads(line) for line in (repope / f"coco_{kind}_random.json").read_text().splitlines()[:8]]
        (folder / f"coco_{kind}_random.json").write_text("".join(json.dumps(r) + "\n" for r in _draw_rows(data, rows)))
    for task, options, parser in (("hallusionbench", {"data": str(folder / "HallusionBench.json")}, "yesno"),
                                  ("repope", {"data": str(folder / "coco_repope_random.json")}, None)):
        spec = get_task(task)

        def scored(spec=spec, options=options, parser=parser) -> None:
            typed = spec.parse_options(options)
            samples = spec.load(typed)
            _score_matched(spec, typed, samples, AnswerMatch({s.id: "Yes" for s in samples}), parser)

        _only_user_errors(scored)


@FUZZ
@given(data=st.data())
def test_hallusionbench_saved_verdicts_near_the_format_score_or_fail_clearly(tmp_path_factory, shared_benchmarks, data):
    """HallusionBench answers scored with saved judge replies (`--judge-replies`) or the official script's cache
    files (`--official-cache`), replies and cached records damaged, left out or repeated: each scores or gives a user
    error."""
    import gzip
    from pathlib import Path

    from parity_cases import hallusion_case

    folder = tmp_path_factory.mktemp("hb")
    rows = json.loads((shared_benchmarks / "hallusionbench" / "HallusionBench.json").read_text())[:10]
    (folder / "data.json").write_text(json.dumps(rows))
    answers, replies = hallusion_case(folder / "data.json", folder / "answers.json", folder / "replies.json")
    saved = json.loads(replies.read_text())
    damaged = dict(zip(saved, _draw_rows(data, list(saved.values()))))
    (folder / "replies.json").write_text(json.dumps(damaged))
    keys = {"_".join(str(r[f]) for f in ("category", "subcategory", "set_id", "figure_id", "question_id")) for r in rows}
    parity = Path(__file__).resolve().parents[1] / "fixtures" / "parity"
    cache = folder / "official"
    cache.mkdir()
    for name in ("hallusion_output_vd_model.json", "hallusion_output_vs_model.json"):
        records = json.loads(gzip.decompress((parity / f"{name}.gz").read_bytes()))
        mine = [r for r in records if "_".join(str(r[f]) for f in ("category", "subcategory", "set_id", "figure_id", "question_id")) in keys]
        (cache / name).write_text(json.dumps(_draw_rows(data, mine) if mine else mine))
    for options in ({"data": str(folder / "data.json"), "judge_replies": str(folder / "replies.json")},
                    {"data": str(folder / "data.json"), "official_cache": str(cache)}):
        _only_user_errors(_scored_in_process, "hallusionbench", answers, options)
