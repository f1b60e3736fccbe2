"""AMBER: `mmhallu score amber` prints the official inference.py's numbers for every evaluation type (spaCy vectors
replaced by a small local pipeline, the one change made to the official run); bad input; `mmhallu run` end to end."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from parity_cases import amber_answers, amber_vectors
from cli_in_process import mmhallu

pytest.importorskip("spacy", reason="AMBER's synonym check needs spaCy (pip install 'mmhallu-eval[amber]')")

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
OFFICIAL = json.loads((Path(__file__).parents[1] / "fixtures" / "parity" / "amber_official.json").read_text())


@pytest.fixture(scope="module")
def vectors(shared_benchmarks, tmp_path_factory) -> Path:
    return amber_vectors(shared_benchmarks / "amber", tmp_path_factory.mktemp("spacy") / "vectors")


def score(*args: str) -> subprocess.CompletedProcess:
    return mmhallu("score", "amber", *args)


@pytest.mark.parametrize("evaluation_type", ["a", "g", "d", "de", "da", "dr"])
def test_official_table_equals_inference_py(shared_benchmarks, vectors, tmp_path, evaluation_type):
    data = shared_benchmarks / "amber"
    answers = amber_answers(data, tmp_path / "answers.json")
    done = score("--data", str(data), "--spacy-model", str(vectors), "--evaluation-type", evaluation_type,
                 "--answers", str(answers), "--out", str(tmp_path / "result.json"))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    official = OFFICIAL["a"] if evaluation_type == "d" else OFFICIAL[evaluation_type]
    if evaluation_type == "d":  # the d flag prints the discriminative sections of the a printout
        official = {k: v for k, v in official.items() if k != "generative"}
    assert result["metrics"]["official_table"] == official
    if evaluation_type == "a":
        table = result["metrics"]["official_table"]
        assert result["metrics"]["amber_score"] == (100 - table["generative"]["CHAIR"] + table["discriminative"]["F1"]) / 2
        assert set(result["groups"]) == {"generative", "existence", "state", "number", "action", "relation"}
        assert result["metrics"]["chair"] == pytest.approx(table["generative"]["CHAIR"] / 100, abs=5e-4)
    else:
        assert result["other_type_answers"] == 15220 - result["n"]


def test_answers_problems_are_named(shared_benchmarks, vectors, tmp_path):
    data = shared_benchmarks / "amber"
    rows = [{"id": 8633, "response": "Yes"}, {"id": 8633, "response": "No"}, {"id": 99999, "response": "No"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    done = score("--data", str(data), "--evaluation-type", "de", "--answers", str(tmp_path / "a.json"), "--out", str(tmp_path / "r.json"))
    assert done.returncode == 2
    assert "duplicate answer ids (first: 8633)" in done.stderr and "answer ids not in the data (first: 99999)" in done.stderr
    assert "missing answers" in done.stderr
    (tmp_path / "b.json").write_text(json.dumps([{"id": 8633}]))
    done = score("--data", str(data), "--answers", str(tmp_path / "b.json"), "--out", str(tmp_path / "r.json"))
    assert done.returncode == 2 and "entry 0 must be an object with 'id' and 'response'" in done.stderr


def test_missing_spacy_model_names_the_download(shared_benchmarks, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"id": 1, "response": "A dog on the grass."}]))
    done = score("--data", str(shared_benchmarks / "amber"), "--spacy-model", "no_such_pipeline", "--evaluation-type", "g",
                 "--answers", str(tmp_path / "a.json"), "--out", str(tmp_path / "r.json"), "--allow-missing")
    assert done.returncode == 2
    assert "spaCy pipeline 'no_such_pipeline' is not installed: python -m spacy download en_core_web_lg" in done.stderr


def test_changed_counters_are_refused(shared_benchmarks, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shared_benchmarks / "amber", data)
    (data / "metrics.txt").write_text("chair_num=0\nchair_score=0\n")
    (tmp_path / "a.json").write_text(json.dumps([{"id": 1005, "response": "Yes"}]))
    done = score("--data", str(data), "--answers", str(tmp_path / "a.json"), "--out", str(tmp_path / "r.json"), "--allow-missing")
    assert done.returncode == 2 and "metrics.txt:1: chair_num=0 differs from the published counters" in done.stderr


def test_damaged_annotations_and_queries_are_named(shared_benchmarks, tmp_path):
    """An annotation whose type is a list, one without truth or hallu, and a query without its text were a TypeError
    or KeyError traceback; each is one line naming the entry."""
    data = tmp_path / "data"
    shutil.copytree(shared_benchmarks / "amber", data)
    annotations = json.loads((data / "annotations.json").read_text())
    queries = json.loads((data / "query" / "query_all.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps([{"id": 1005, "response": "Yes"}]))
    cases = (
        ("annotations.json", annotations, 1004, {"type": ["generative"]}, "entry 1004 must have id 1005 and an AMBER type"),
        ("annotations.json", annotations, 0, {"hallu": None}, 'entry 0 (id 1) needs "truth" and "hallu" as lists of object words'),
        ("annotations.json", annotations, 1004, {"truth": ["no"]}, 'entry 1004 (id 1005) needs "truth" as text (yes or no)'),
        ("query/query_all.json", queries, 3, {"query": None}, 'entry 3 needs "id", "image" and "query" (text)'),
    )
    for name, rows, i, change, why in cases:
        damaged = [dict(r) for r in rows]
        damaged[i] = {**damaged[i], **change}
        (data / name).write_text(json.dumps(damaged))
        done = score("--data", str(data), "--answers", str(tmp_path / "a.json"), "--out", str(tmp_path / "r.json"), "--allow-missing")
        assert done.returncode == 2 and f"error: {data / name}: {why}" in done.stderr, done.stderr
        (data / name).write_text(json.dumps(rows))


def build_amber_world(pope_fixture: Path, out: Path, shared: Path) -> Path:
    """AMBER's file layout over the generated shapes images: one description and two yes/no questions per image."""
    out.mkdir()
    rows = [json.loads(x) for x in (pope_fixture / "shapes_pope_random.json").read_text().splitlines()]
    images = sorted({r["image"] for r in rows})[:4]
    shapes = sorted({r["text"].split("a ", 1)[1].split(" in")[0] for r in rows})
    annotations, queries = [], []
    for image in images:
        present = sorted({r["text"].split("a ", 1)[1].split(" in")[0] for r in rows if r["image"] == image and r["label"] == "yes"})
        absent = [s for s in shapes if s not in present]
        annotations.append({"id": len(annotations) + 1, "type": "generative", "truth": present, "hallu": absent})
        queries.append({"id": len(queries) + 1, "image": image, "query": "Describe this image."})
    for image in images:
        for shape, kind in ((shapes[0], "discriminative-hallucination"), (shapes[1], "discriminative-attribute-state")):
            annotations.append({"id": len(annotations) + 1, "type": kind, "truth": "no"})
            queries.append({"id": len(queries) + 1, "image": image, "query": f"Is there a {shape} in this image?"})
    (out / "annotations.json").write_text(json.dumps(annotations))
    (out / "query").mkdir()
    (out / "query" / "query_all.json").write_text(json.dumps(queries))
    (out / "relation.json").write_text(json.dumps({s: [] for s in shapes}))
    for name in ("safe_words.txt", "metrics.txt"):
        shutil.copy(shared / "amber" / name, out / name)
    return out


def test_run_end_to_end(tiny_llava, pope_fixture, shared_benchmarks, vectors, tmp_path):
    data = build_amber_world(pope_fixture, tmp_path / "amber", shared_benchmarks)
    out = tmp_path / "run"
    done = mmhallu("run", "--model", str(tiny_llava), "--tasks", "amber", "--out", str(out),
                           "--task-arg", f"amber.data={data}", "--task-arg", f"amber.images={pope_fixture / 'images'}",
                           "--task-arg", f"amber.spacy_model={vectors}", "--task-arg", "amber.max_new_tokens=16",
                           "--device", "cpu", "--dtype", "float32", "--no-progress")
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "amber" / "result.json").read_text())
    assert result["n"] == 12 and result["errors"]["total"] == 0
    assert set(result["metrics"]["official_table"]) == {"generative", "existence", "attribute", "state", "number", "action"}
    records = [json.loads(x) for x in (out / "amber" / "samples.jsonl").read_text().splitlines()]
    assert all("counts" in r for r in records)
