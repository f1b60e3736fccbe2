"""Careless and hostile input, one regression test per case: no script runs from a page, no file is lost, no secret
is written, and bad answers are counted rather than scored silently."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from cli_in_process import mmhallu
from judge_server import JudgeServer
from mmhallu_eval.redact import redact, redact_argv, redact_url



_cli = mmhallu


def _error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and lines and lines[-1].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[-1]


@pytest.fixture()
def scored(tmp_path, pope_fixture) -> Path:
    """A POPE result folder written by `mmhallu score` (a single-task run folder for the pages)."""
    answers = tmp_path / "answers.jsonl"
    rows = [json.loads(line) for f in sorted(pope_fixture.glob("*_pope_*.json")) for line in f.read_text().splitlines()]
    answers.write_text("".join(json.dumps({"question_id": f"{f.stem.split('_pope_')[1]}-{r['question_id']}", "text": "Yes"}) + "\n"
                               for f in sorted(pope_fixture.glob("*_pope_*.json")) for r in map(json.loads, f.read_text().splitlines())))
    assert rows
    out = tmp_path / "scored" / "pope" / "result.json"
    proc = _cli("score", "pope", "--data", str(pope_fixture), "--answers", str(answers), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    shutil.move(out.with_name("result.samples.jsonl"), out.with_name("samples.jsonl"))
    return out.parent.parent


# --- security -----------------------------------------------------------------------------------------------------

def test_secrets_are_redacted_everywhere_they_could_be_written():
    assert redact_url("http://u:KEY@host:8/v1?api_key=K2&x=1") == "http://***@host:8/v1?api_key=***&x=1"
    assert redact({"base_url": "https://u:p@h/v1", "judge_api_key": "abc", "caption_key": "caption", "note": "sk-abcdefghijklmnop1234"}) == {
        "base_url": "https://***@h/v1", "judge_api_key": "***", "caption_key": "caption", "note": "***"}
    argv = ["mmhallu", "run", "--judge-api-key", "S", "--api-token=T", "--api-key-env", "MY_KEY", "--base-url", "http://u:k@h/v1?token=1",
            "--task-arg", "mmhal.judge_api_key=Z"]
    assert redact_argv(argv) == ["mmhallu", "run", "--judge-api-key", "***", "--api-token=***", "--api-key-env", "MY_KEY", "--base-url",
                                 "http://***@h/v1?token=***", "--task-arg", "mmhal.judge_api_key=***"]


def test_credentials_in_base_urls_never_reach_files(tmp_path, pope_fixture, shared_benchmarks):
    with JudgeServer() as server:
        server.reply_fn = lambda prompt: "Yes. Rating: 4"
        url = server.url.replace("http://", "http://user:PASSWORD123@")
        out = tmp_path / "run"
        proc = _cli("run", "--backend", "openai", "--base-url", url, "--model", "m", "--tasks", "pope", "--out", str(out), "--no-progress", "--limit", "4",
                    "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}")
        assert proc.returncode == 0, proc.stderr
        answers = tmp_path / "response.json"
        items = json.loads((shared_benchmarks / "mmhal/response_template.json").read_text())
        answers.write_text(json.dumps([{**item, "model_answer": "an answer"} for item in items]))
        scored = tmp_path / "mmhal" / "r.json"
        proc = _cli("score", "mmhal", "--answers", str(answers), "--out", str(scored), "--judge-model", "j", "--judge-base-url", url)
        assert proc.returncode == 0, proc.stderr
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl"))
    assert "PASSWORD123" not in written and "***@127.0.0.1" in written


def test_api_key_env_must_name_a_set_variable(tmp_path, pope_fixture):
    args = ["run", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--tasks", "pope", "--task-arg", f"pope.data={pope_fixture}",
            "--task-arg", f"pope.images={pope_fixture / 'images'}"]
    line = _error(_cli(*args, "--out", str(tmp_path / "a"), "--api-key-env", "sk-REALKEY0123456789abcdef"))
    assert "NAME of an environment variable" in line and "sk-REAL" not in line
    line = _error(_cli(*args, "--out", str(tmp_path / "b"), "--api-key-env", "MMHALLU_UNSET_VAR", env={"MMHALLU_UNSET_VAR": ""}))
    assert "MMHALLU_UNSET_VAR: that environment variable is not set" in line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_leaderboard_links_are_quoted_and_tables_escaped(scored, tmp_path):
    runs = []
    for name in ("javascript:alert(50)", "run#1?x=%41"):
        shutil.copytree(scored, tmp_path / name)
        runs.append(tmp_path / name)
    (runs[0] / "manifest.json").write_text(json.dumps({"model": {"model": "<b>bad|name</b>/x"}, "tasks": {}}))
    broken = tmp_path / "broken"
    broken.mkdir()
    out = tmp_path / "board" / "leaderboard.html"
    proc = _cli("leaderboard", *map(str, runs), str(broken), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert 'href="./../javascript%3Aalert%2850%29/report.html"' in html and 'href="./../run%231%3Fx%3D%2541/report.html"' in html
    assert "Content-Security-Policy" in html and "default-src &#39;none&#39;" not in html and "default-src 'none'" in html
    assert "could not be read" in html and "broken" in html
    md = out.with_suffix(".md").read_text()
    assert "<b>" not in md and "&lt;b&gt;bad\\|name&lt;/b&gt;/x" in md


def test_report_shows_only_images_from_the_runs_data_folders(tiny_llava, pope_fixture, tmp_path):
    secret = tmp_path / "home" / "secret.png"
    secret.parent.mkdir()
    Image.new("RGB", (8, 8), "red").save(secret)
    bomb = pope_fixture / "images" / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb)  # 144 M pixels: refused before decoding
    try:
        out = tmp_path / "run"
        rel_images = os.path.relpath(pope_fixture / "images", tmp_path)
        proc = _cli("run", "--model", str(tiny_llava), "--tasks", "pope", "--out", "run", "--no-progress", "--device", "cpu", "--limit", "3",
                    "--max-new-tokens", "2", "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={rel_images}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        samples = out / "pope" / "samples.jsonl"
        rows = [json.loads(line) for line in samples.read_text().splitlines()]
        rows[1]["images"] = [str(secret)]
        rows[2]["images"] = [os.path.join(rel_images, "bomb.png")]
        samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        proc = _cli("report", str(out), cwd=elsewhere)  # relative image names resolve against the run's own folder
        assert proc.returncode == 0, proc.stderr
        html = (out / "report.html").read_text()
        assert html.count("data:image/jpeg;base64") == 1
        assert "outside the run&#39;s data folders" in html and "could not be decoded" in html
    finally:
        bomb.unlink()


# --- data loss ------------------------------------------------------------------------------------------------------

def test_no_command_writes_over_its_inputs(scored, tmp_path, pope_fixture):
    answers = tmp_path / "answers.jsonl"
    before = answers.read_bytes()
    assert "is one of this command's inputs" in _error(_cli("score", "pope", "--data", str(pope_fixture), "--answers", str(answers), "--out", str(answers)))
    named = tmp_path / "x.samples.jsonl"
    shutil.copy(answers, named)
    assert "is one of this command's inputs" in _error(_cli("score", "pope", "--data", str(pope_fixture), "--answers", str(named), "--out", str(tmp_path / "x.json")))
    assert "inside the input folder" in _error(_cli("score", "pope", "--data", str(pope_fixture), "--answers", str(answers),
                                                     "--out", str(pope_fixture / "r.json")))
    assert answers.read_bytes() == before
    samples = scored / "pope" / "samples.jsonl"
    kept = samples.read_bytes()
    assert "inside the input folder" in _error(_cli("report", str(scored), "--out", str(samples)))
    assert "inside the input folder" in _error(_cli("leaderboard", str(scored), "--out", str(scored / "manifest.json")))
    assert samples.read_bytes() == kept and not (scored / "manifest.json").exists()


def test_overwrite_checks_everything_first_and_deletes_only_a_runs_files(tiny_llava, pope_fixture, tmp_path):
    args = ["run", "--model", str(tiny_llava), "--tasks", "pope", "--no-progress", "--device", "cpu", "--limit", "4", "--max-new-tokens", "2",
            "--task-arg", f"pope.images={pope_fixture / 'images'}"]
    out = tmp_path / "run"
    assert _cli(*args, "--out", str(out), "--task-arg", f"pope.data={pope_fixture}").returncode == 0
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    line = _error(_cli(*args, "--out", str(out), "--overwrite", "--task-arg", f"pope.data={pope_fixture}-typo"))
    assert "not found" in line and {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    home = tmp_path / "home"
    shutil.copytree(tiny_llava, home / "model")
    (home / "notes.txt").write_text("mine")
    line = _error(_cli(*args, "--out", str(home), "--overwrite", "--task-arg", f"pope.data={pope_fixture}"))
    assert "not part of a run" in line and (home / "notes.txt").read_text() == "mine" and (home / "model" / "config.json").exists()
    fresh = tmp_path / "fresh"
    _error(_cli(*args, "--out", str(fresh), "--task-arg", f"pope.data={pope_fixture}-typo"))
    assert not fresh.exists()  # a start that fails leaves nothing behind: the corrected command is not refused
    assert _cli(*args, "--out", str(fresh), "--task-arg", f"pope.data={pope_fixture}").returncode == 0


def test_edited_or_foreign_cache_is_refused_and_a_run_folder_is_locked(tiny_llava, pope_fixture, tmp_path):
    args = ["run", "--model", str(tiny_llava), "--tasks", "pope", "--no-progress", "--device", "cpu", "--limit", "4", "--max-new-tokens", "2",
            "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}"]
    out = tmp_path / "run"
    assert _cli(*args, "--out", str(out)).returncode == 0
    with sqlite3.connect(out / "cache.sqlite") as conn:
        conn.execute("UPDATE responses SET text = 'Yes'")
    line = _error(_cli(*args, "--out", str(out)))
    assert "does not match its checksum" in line and "--rebuild-cache" in line and str(out / "cache.sqlite") in line
    assert _cli(*args, "--out", str(out), "--rebuild-cache").returncode == 0
    (out / "cache.sqlite").write_bytes(b"not a database at all" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"{out / 'cache.sqlite'}{suffix}").unlink(missing_ok=True)
    line = _error(_cli(*args, "--out", str(out)))
    assert str(out / "cache.sqlite") in line and "--rebuild-cache" in line

    import fcntl

    with (out / ".lock").open("a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        held.write("4242")
        held.flush()
        line = _error(_cli(*args, "--out", str(out), "--rebuild-cache"))
    assert "is being written by another mmhallu run (process 4242)" in line


# --- silent wrong results ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [None, 1, ["Yes"], {"a": 1}])
def test_answers_that_are_not_text_are_counted_not_scored(tmp_path, pope_fixture, text):
    first = json.loads((sorted(pope_fixture.glob("*_pope_*.json"))[0]).read_text().splitlines()[0])
    split = sorted(pope_fixture.glob("*_pope_*.json"))[0].stem.split("_pope_")[1]
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"question_id": f"{split}-{first['question_id']}", "text": text}) + "\n")
    proc = _cli("score", "pope", "--data", str(pope_fixture), "--answers", str(answers), "--out", str(tmp_path / "r.json"), "--allow-missing")
    assert proc.returncode == 0 and "1 answers that are not text" in proc.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["n"] == 0 and result["invalid_answers"] == 1


def test_empty_and_duplicated_answer_files(tmp_path, finer_fixture, shared_benchmarks):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "no answers in the file" in _error(_cli("score", "chair", "--answers", str(empty), "--gt", str(shared_benchmarks / "chair/opera_captions/gt_objects.json"),
                                                    "--out", str(tmp_path / "c.json")))
    items = json.loads((shared_benchmarks / "mmhal/response_template.json").read_text())
    filled = [{**item, "model_answer": "x"} for item in items] + [{**items[0], "model_answer": "again"}]
    mmhal = tmp_path / "response.json"
    mmhal.write_text(json.dumps(filled))
    proc = _cli("score", "mmhal", "--answers", str(mmhal), "--out", str(tmp_path / "m.json"), "--judge-replies", str(tmp_path / "none.json"))
    assert proc.returncode == 2 and "1 duplicate answer ids (first: item 96 (= item 0))" in proc.stderr


def test_a_folder_given_for_an_answers_file(tmp_path, pope_fixture):
    folder = tmp_path / "answers"
    folder.mkdir()
    line = _error(_cli("score", "pope", "--data", str(pope_fixture), "--answers", str(folder), "--out", str(tmp_path / "r.json")))
    assert line == f"error: {folder}: a folder, where a file is expected; name the file inside it"


def test_a_sample_id_twice_in_the_data_is_refused_before_the_model_loads(tmp_path, pope_fixture):
    data = tmp_path / "pope"
    shutil.copytree(pope_fixture, data)
    split = data / "shapes_pope_random.json"
    first = split.read_text().splitlines()[0]
    split.write_text(split.read_text() + first + "\n")
    out = tmp_path / "run"
    line = _error(_cli("run", "--model", str(tmp_path / "no-model"), "--tasks", "pope", "--task-arg", f"pope.data={data}",
                       "--task-arg", f"pope.images={data / 'images'}", "--out", str(out)))
    qid = json.loads(first)["question_id"]
    assert line.startswith(f"error: task 'pope': sample id 'random-{qid}' occurs more than once in the data") and "remove the repeated entry" in line
    assert not out.exists()


def test_an_out_that_names_a_folder_gets_the_usual_file_inside(scored, tmp_path, pope_fixture):
    """report, leaderboard and score write into an existing folder given as --out (as `cp FILE DIR` does)."""
    folder = tmp_path / "pages"
    folder.mkdir()
    assert _cli("report", str(scored), "--out", str(folder)).returncode == 0
    assert _cli("leaderboard", str(scored), "--out", str(folder)).returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == ["leaderboard.csv", "leaderboard.html", "leaderboard.md", "report.html"]
    assert (folder / "leaderboard.csv").read_text().splitlines()[1].startswith("scored,")  # no model named: the folder's name alone
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": r["id"], "text": "No"}) + "\n"
                               for r in map(json.loads, (scored / "pope" / "samples.jsonl").read_text().splitlines())))
    rescored = tmp_path / "rescored"
    rescored.mkdir()
    proc = _cli("score", "pope", "--data", str(pope_fixture), "--answers", str(answers), "--out", str(rescored))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in rescored.iterdir()) == ["result.json", "result.samples.jsonl"]
    # results scored into DIR/<task>/result.json read as a run too (result.samples.jsonl beside each)
    by_task = tmp_path / "by-task"
    assert _cli("score", "pope", "--data", str(pope_fixture), "--answers", str(answers), "--out", str(by_task / "pope" / "result.json")).returncode == 0
    proc = _cli("compare", str(by_task), str(rescored), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 0 and json.loads((tmp_path / "cmp" / "compare.json").read_text())["tasks"]["pope"], proc.stderr
    assert _cli("leaderboard", str(scored), "--out", str(tmp_path / "board")).returncode == 0  # no extension: a folder
    assert (tmp_path / "board" / "leaderboard.html").is_file()


def test_an_out_folder_that_is_a_file_is_one_error_line(scored, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = _error(_cli("compare", str(scored), str(scored), "--out", str(blocker)))
    assert line.endswith(f"{blocker} is a file, where a folder is expected; give --out a folder path")
    for command in (["world", "pope-fixture"], ["world", "build"], ["world", "tiny-model"], ["demo"]):
        assert _error(_cli(*command, "--out", str(blocker))) == f"error: --out {blocker} is a file; give --out a folder"
    assert blocker.read_text() == ""


def test_generators_do_not_write_among_other_files(tmp_path):
    """world build, pope-fixture, tiny-model and the demo write many files (the demo deletes a stale world it built):
    a folder of other files is refused before anything is written; their own earlier output is built again."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("mine")
    for command, kind in ((["world", "build"], "a shapes world's"), (["world", "pope-fixture"], "a POPE fixture's"),
                          (["world", "tiny-model"], "a tiny model's"), (["demo"], "the demo's")):
        line = _error(_cli(*command, "--out", str(notes)))
        assert line.startswith(f"error: --out {notes} holds files that are not {kind} (README.md); give --out a new folder, or "), line
    assert [p.name for p in notes.iterdir()] == ["README.md"]
    world = tmp_path / "world"
    for _ in range(2):
        proc = _cli("world", "build", "--out", str(world), "--train", "2", "--test", "2")
        assert proc.returncode == 0, proc.stderr


def test_benchmark_builders_replace_neither_their_input_nor_other_files(tmp_path):
    """build pope/mme/finer/mmhal write files of fixed names: one that is the input, or an existing file with other
    content (the official coco_pope_random.json, a build with another seed), is refused before any file is written;
    the same build again leaves its files as they are."""
    world = tmp_path / "world"
    assert _cli("world", "build", "--out", str(world), "--train", "2", "--test", "6").returncode == 0
    graphs = world / "scene_graph_test.json"
    before = graphs.read_bytes()
    assert _error(_cli("build", "mmhal", "--annotations", str(graphs), "--out", str(graphs))) == \
        f"error: --out {graphs} is one of this command's inputs ({graphs.resolve()}); write the output elsewhere"
    assert graphs.read_bytes() == before
    pope = tmp_path / "pope"
    pope.mkdir()
    official = pope / "coco_pope_random.json"
    official.write_text('{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"}\n')
    line = _error(_cli("build", "pope", "--coco-annotations", str(world), "--split", "test", "--out", str(pope), "--min-objects", "1"))
    assert line == (f"error: --out: {official} already exists with other content (a file this build did not write, or one written "
                    "with other settings); give --out a new path, or move coco_pope_random.json away to write it again")
    assert sorted(p.name for p in pope.iterdir()) == ["coco_pope_random.json"]  # nothing written, not even the other splits
    mme = tmp_path / "mme"
    assert _cli("build", "mme", "--annotations", str(world), "--out", str(mme)).returncode == 0
    written = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in mme.iterdir()}
    assert _cli("build", "mme", "--annotations", str(world), "--out", str(mme)).returncode == 0
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in mme.iterdir()} == written
    assert "already exists with other content" in _error(_cli("build", "mme", "--annotations", str(world), "--out", str(mme), "--seed", "7"))
    assert {p.name: p.read_bytes() for p in mme.iterdir()} == {k: v[0] for k, v in written.items()}


def _each_damage_is_named(good: dict, damages: tuple, bad: Path) -> None:
    """Each damaged copy of an annotations file, written to `bad`, is refused by `load_graphs` with its line; `bad`
    holds the last one afterwards."""
    from mmhallu_eval.annotations import load_graphs
    from mmhallu_eval.errors import TaskError

    for damage, why in damages:
        data = json.loads(json.dumps(good))
        damage(data)
        bad.write_text(json.dumps(data))
        with pytest.raises(TaskError, match=re.escape(f"{bad}: {why}")):
            load_graphs(bad)


def test_damaged_coco_annotations_name_the_entry_at_fault(world, tmp_path):
    """A COCO instances file with an annotation of an unknown category or image, no categories, an image without a
    file name, an id twice or a name that is not text was a KeyError or TypeError traceback in every builder (and,
    for an unknown image, silently dropped); each is one line naming the entry, and the scene-graph path names what
    a COCO file lacks rather than calling it a bad scene graph."""
    from mmhallu_eval.annotations import load_graphs

    good = json.loads((world / "instances_test.json").read_text())
    damages = (
        (lambda d: d["annotations"][0].update(category_id=999), "annotations[0]: category_id 999 is not among the categories"),
        (lambda d: d["annotations"][0].update(image_id=-5), "annotations[0]: image_id -5 is not among the images"),
        (lambda d: d.pop("categories"), 'a COCO instances file needs "categories" as a list of objects'),
        (lambda d: d["images"][0].pop("file_name"), 'images[0] needs an "id" and "file_name" as text'),
        (lambda d: d["images"].append(dict(d["images"][0])), f"images[{len(good['images'])}]: id {good['images'][0]['id']} appears twice in images"),
        (lambda d: d["categories"][0].update(name=5), 'categories[0] needs an "id" and "name" as text'),
        (lambda d: d["annotations"][0].update(bbox=[1, 2]), "annotations[0]: bbox must be [x, y, width, height]"),
        (lambda d: d["images"][1].update(file_name=d["images"][0]["file_name"]),
         f"images: file_name {good['images'][0]['file_name']!r} appears 2 times; each image is one entry"),
        (lambda d: d["annotations"][0].update(attributes={"color": ["red"]}), "annotations[0]: attributes must be an object of text or numbers"),
        (lambda d: d["annotations"][0].update(attributes="red"), "annotations[0]: attributes must be an object"),
    )
    bad = tmp_path / "instances_test.json"
    _each_damage_is_named(good, damages, bad)
    assert _error(_cli("build", "pope", "--coco-annotations", str(bad), "--out", str(tmp_path / "pope"))).startswith(f"error: {bad}: annotations[0]")
    assert not (tmp_path / "pope").exists()
    assert len(load_graphs(world / "instances_test.json")) == len(good["images"])


def test_damaged_scene_graphs_name_the_entry_at_fault(world, tmp_path):
    """A relation without a predicate or naming an object the image lacks, relations that are not a list, a bad box
    or size, an object id twice, or an image described twice was a KeyError, TypeError or IndexError in `build
    finer`/`build mme` and the pair strategies, or silently duplicated questions; each is one line naming the entry.
    A file without image and object ids gets them filled in (the file name, then 1, 2, … in order)."""
    from mmhallu_eval.annotations import load_graphs

    good = json.loads((world / "scene_graph_test.json").read_text())
    good["images"].sort(key=lambda g: len(g["objects"]) < 2)  # the first image has two objects or more, and relations
    first = good["images"][0]
    relation = "needs a \"predicate\" as text and a \"subject\" and an \"object\" that are ids of the image's objects"
    damages = (
        (lambda d: d["images"][0]["relations"][0].pop("predicate"), f"image entry 0, relation 0: {relation}"),
        (lambda d: d["images"][0]["relations"].append({"subject": 1, "predicate": "near", "object": 99}),
         f"image entry 0, relation {len(first['relations'])}: {relation}"),
        (lambda d: d["images"][0]["relations"].append({"subject": [1], "predicate": "near", "object": 1}),
         f"image entry 0, relation {len(first['relations'])}: {relation}"),
        (lambda d: d["images"][0].update(relations="above"), "image entry 0: 'relations' must be a list"),
        (lambda d: d["images"][0]["objects"][0].update(bbox=[1, 2]), "image entry 0, object 0: bbox must be [x, y, width, height]"),
        (lambda d: d["images"][0]["objects"][0].update(attributes={"color": {"r": 1}}), "image entry 0, object 0: attribute values must be text or numbers"),
        (lambda d: d["images"][0]["objects"][1].update(id=d["images"][0]["objects"][0]["id"]), "image entry 0, object 1: 'id' must be a number or text"),
        (lambda d: d["images"][0].update(width="wide"), "image entry 0: 'width' must be a positive number of pixels (got 'wide')"),
        (lambda d: d["images"].append(dict(d["images"][0], image_id="other")),
         f"image entries 0 and {len(good['images'])} both describe {first['file_name']}; merge them into one entry"),
        (lambda d: d["images"][1].update(image_id=first["image_id"]), f"image entries 0 and 1 have the same image_id {first['image_id']!r}"),
    )
    bad = tmp_path / "scene_graph_test.json"
    _each_damage_is_named(good, damages, bad)
    for command in (("build", "finer", "--annotations", str(bad), "--out", str(tmp_path / "finer")),
                    ("pairs", "build", "--strategy", "finer", "--annotations", str(bad), "--images", str(world / "images"), "--out", str(tmp_path / "p.jsonl"))):
        assert _error(_cli(*command)).startswith(f"error: {bad}: image entries 0 and 1 have the same image_id")
    assert not (tmp_path / "finer").exists() and not (tmp_path / "p.jsonl").exists()
    bare = json.loads(json.dumps(good))
    for g in bare["images"]:
        g.pop("image_id")
        for o in g["objects"]:
            o.pop("id")
    bad.write_text(json.dumps(bare))
    filled = load_graphs(bad)[0]
    assert filled["image_id"] == first["file_name"] and [o["id"] for o in filled["objects"]] == list(range(1, len(first["objects"]) + 1))
    # the shapes world numbers its objects 1, 2, … in order, so its relations name the same objects after filling in
    assert _cli("pairs", "build", "--strategy", "finer,caption_swap", "--annotations", str(bad), "--images", str(world / "images"),
                "--out", str(tmp_path / "p.jsonl")).returncode == 0


def test_a_hub_dataset_without_network_says_where_local_files_go(tmp_path):
    """Offline, the default hub data of POPE fails with the way to bring it over and the task option to give it as."""
    proc = _cli("run", "--model", str(tmp_path / "no-model"), "--tasks", "pope", "--out", str(tmp_path / "r"),
                env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    line = _error(proc)
    assert line.startswith("error: could not load the HF dataset 'lmms-lab/POPE' (split='test')")
    assert ".save_to_disk(DIR)`) and pass hf:DIR, or the benchmark's own files, as pope.data (`mmhallu score pope --data ...`" in line
    missing = tmp_path / "answers.jsonl"
    assert _error(_cli("score", "finer_docci", "--answers", str(missing), "--out", str(tmp_path / "f"))) == \
        f"error: --answers {missing}: not found"  # before the hub is tried for the data
    assert _error(_cli("score", "amber", "--answers", str(missing), "--out", str(tmp_path / "a"))) == f"error: --answers {missing}: not found"


def test_bom_and_latin1_in_mme_lists(tmp_path):
    folder = tmp_path / "mme"
    folder.mkdir()
    (folder / "existence.txt").write_bytes("\ufeffa.jpg\tIs there a dog? Please answer yes or no.\tYes\tYes\n".encode() +
                                         "a.jpg\tIs there a cat? Please answer yes or no.\tNo\tNo\n".encode())
    proc = _cli("score", "mme", "--answers", str(folder), "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr  # the byte-order mark is dropped, not part of the image name
    assert json.loads(tmp_path.joinpath("r.samples.jsonl").read_text().splitlines()[0])["metadata"]["image"] == "a.jpg"
    (folder / "existence.txt").write_bytes("a.jpg\tIs there a d\xf6g?\tYes\tYes\n".encode("latin-1"))
    line = _error(_cli("score", "mme", "--answers", str(folder), "--out", str(tmp_path / "r2.json")))
    assert f"{folder / 'existence.txt'}:1: not UTF-8 text" in line


def test_a_full_disk_names_the_path(tmp_path, monkeypatch, capsys):
    """Disk full while caching answers: a CacheError naming the cache file (finished answers kept); while writing a
    result: one error line naming the file, exit 2, no traceback."""
    import errno

    from mmhallu_eval.cache import ResponseCache
    from mmhallu_eval.cache import CacheError
    from mmhallu_eval.types import Response

    cache = ResponseCache(tmp_path / "cache.sqlite")

    class Full:  # a connection whose every write finds the disk full
        def __enter__(self):
            raise sqlite3.OperationalError("database or disk is full")

        def __exit__(self, *exc):
            return False

    cache._conn = Full()
    with pytest.raises(CacheError, match=f"{tmp_path / 'cache.sqlite'}: the disk is full"):
        cache.put_many([("k", Response(id="1", text="Yes"))])

    import mmhallu_eval.files as files
    from mmhallu_eval.cli import main

    answers = tmp_path / "a.jsonl"
    answers.write_text('{"question_id": "1", "text": "Yes"}\n')
    data = tmp_path / "coco_pope_random.json"
    data.write_text('{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "label": "yes"}\n')
    out = tmp_path / "o" / "r.json"

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(files, "atomic_write_text", full)
    monkeypatch.setattr("sys.argv", ["mmhallu", "score", "pope", "--data", str(data), "--answers", str(answers), "--out", str(out)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {out}: No space left on device" in err and "Traceback" not in err


def test_a_device_or_dtype_this_machine_cannot_use_is_one_line_before_the_model_loads(tmp_path, pope_fixture):
    import torch

    from mmhallu_eval.backends.base import BackendError
    from mmhallu_eval.backends.transformers_backend import _pick_device, _pick_dtype

    with pytest.raises(BackendError, match="unknown device 'cdua'; use auto, cpu, cuda, cuda:N or mps"):
        _pick_device("cdua")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="--device cuda:1: this machine has no CUDA device"):
            _pick_device("cuda:1")
    assert _pick_device("cpu") == "cpu" and _pick_device("auto") in ("cpu", "cuda")
    with pytest.raises(BackendError, match="unknown dtype 'nn'; use auto, float32, bfloat16 or float16"):
        _pick_dtype("nn", "cpu")
    assert _pick_dtype("bfloat16", "cpu") is torch.bfloat16
    (tmp_path / "model").mkdir()  # the device is checked before anything of the model is read
    line = _error(_cli("run", "--model", str(tmp_path / "model"), "--tasks", "pope", "--task-arg", f"pope.data={pope_fixture}",
                       "--task-arg", f"pope.images={pope_fixture / 'images'}", "--out", str(tmp_path / "r"), "--device", "cdua"))
    assert line == "error: unknown device 'cdua'; use auto, cpu, cuda, cuda:N or mps"


def test_counts_below_one_are_refused_not_read_as_defaults(tmp_path, pope_fixture):
    """`--limit 0` read as "no limit" and `--limit -3` as "all but three"; `--batch-size 0` as the default."""
    from mmhallu_eval.runner import RunConfig, run
    from mmhallu_eval.task import TaskError

    args = ["run", "--model", str(tmp_path / "m"), "--tasks", "pope", "--out", str(tmp_path / "r")]
    for flag, value in (("--limit", "0"), ("--limit", "-3"), ("--batch-size", "0"), ("--max-new-tokens", "0")):
        proc = _cli(*args, flag, value)
        assert proc.returncode == 2 and f"Invalid value for '{flag}'" in proc.stderr, proc.stderr
    loop = ["loop", "--model", "m", "--train-data", "a.json", "--train-images", "i", "--tasks", "pope", "--out", str(tmp_path / "l")]
    for flag in ("--limit", "--max-new-tokens", "--batch-size"):
        proc = _cli(*loop, flag, "0")
        assert proc.returncode == 2 and f"Invalid value for '{flag}'" in proc.stderr, proc.stderr
    with pytest.raises(TaskError, match="run setting limit=-3: give a whole number of at least 1"):
        run(RunConfig(model="m", tasks=["pope"], out=tmp_path / "r", limit=-3))
    assert not (tmp_path / "r").exists() and not (tmp_path / "l").exists()
    assert RunConfig(model="m", tasks=["pope", "chair", "pope"], out=tmp_path / "r").tasks == ["pope", "chair"]  # the API runs a task once too


def test_a_leaderboard_says_which_runs_it_skipped_and_a_parser_typo_gets_a_suggestion(scored, tmp_path, pope_fixture):
    proc = _cli("leaderboard", str(scored), str(tmp_path / "gone"), "--out", str(tmp_path / "board.html"))
    assert proc.returncode == 0 and f"skipped {tmp_path / 'gone'}: {tmp_path / 'gone'}: run folder (or result file) not found" in proc.stderr
    assert str(tmp_path / "gone") in (tmp_path / "board.html").read_text()  # and listed on the page
    proc = _cli("leaderboard", str(scored), str(scored / "."), str(scored), "--out", str(tmp_path / "once"))
    assert proc.returncode == 0 and len((tmp_path / "once" / "leaderboard.csv").read_text().splitlines()) == 2  # a run named thrice: one row
    twin = tmp_path / "elsewhere" / scored.name  # the same folder name under another parent: the rows say which is which
    shutil.copytree(scored, twin)
    assert _cli("leaderboard", str(scored), str(twin), "--out", str(tmp_path / "twins")).returncode == 0
    rows = [line.split(",")[0] for line in (tmp_path / "twins" / "leaderboard.csv").read_text().splitlines()[1:]]
    assert rows == [f"{scored.name} [{scored}]", f"{scored.name} [{twin}]"]
    (tmp_path / "a.jsonl").write_text("")
    line = _error(_cli("score", "pope", "--data", str(pope_fixture), "--answers", str(tmp_path / "a.jsonl"), "--out", str(tmp_path / "r"),
                       "--parser", "strcit"))
    assert line == "error: task 'pope' has no parser 'strcit' (did you mean 'strict'?); choose one of: pope-official, pope-opera, strict"


def test_compare_says_which_tasks_it_left_out(scored, tmp_path):
    two = tmp_path / "two"
    shutil.copytree(scored, two)
    (two / "extra").mkdir()
    result = json.loads((two / "pope" / "result.json").read_text())
    (two / "extra" / "result.json").write_text(json.dumps({**result, "task": "repope"}))
    proc = _cli("compare", str(scored), str(two), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 0, proc.stderr
    assert f"not compared (only in {two}): repope" in proc.stderr


def test_tasks_named_twice_run_once_and_none_named_is_refused(tmp_path):
    from mmhallu_eval.cli.common import split

    assert split("pope, chair,pope,,") == ["pope", "chair"]
    line = _error(_cli("run", "--model", str(tmp_path / "m"), "--tasks", ",", "--out", str(tmp_path / "r")))
    assert line == "error: --tasks ',': name at least one task (mmhallu tasks lists them)"


def test_builders_refuse_counts_below_one(tmp_path):
    for args in (["world", "pope-fixture", "--n-images", "0"], ["world", "build", "--train", "0"], ["build", "mmhal", "--annotations", "a", "--n-items", "0"],
                 ["train", "dpo", "--model", "m", "--pairs", "p", "--batch-size", "0"]):
        proc = _cli(*args, "--out", str(tmp_path / "o"))
        assert proc.returncode == 2 and "Input should be greater than or equal to 1" in proc.stderr, (args, proc.stderr)
    assert not (tmp_path / "o").exists()


def test_damaged_run_folders_are_named_by_the_pages_and_skipped_by_the_leaderboard(scored, tmp_path):
    """A hand-edited or truncated manifest, result or samples file was a traceback (or, with samples.jsonl gone, a
    compare that blamed "different samples"); each is now one line naming the file, and a leaderboard skips the run."""
    manifest = {"model": {"model": "m"}, "tasks": {"pope": {"data_roots": []}}}
    result = json.loads((scored / "pope" / "result.json").read_text())
    lines = (scored / "pope" / "samples.jsonl").read_text().splitlines()
    damages = {
        "manifest-list": ({"manifest.json": "[1]"}, "manifest.json: not a mmhallu manifest.json (expected a JSON object, got list)"),
        "manifest-task": ({"manifest.json": json.dumps({**manifest, "tasks": {"pope": 3}})}, "manifest.json: not a mmhallu manifest.json"),
        "metrics": ({"pope/result.json": json.dumps({**result, "metrics": "x"})}, "pope/result.json: not a mmhallu result.json (\"metrics\" is not an object)"),
        "no-groups": ({"pope/result.json": json.dumps({k: v for k, v in result.items() if k != "groups"})}, "pope/result.json: not a mmhallu result.json"),
        "line": ({"pope/samples.jsonl": "\n".join([lines[0], "{broken", *lines[2:]])}, "pope/samples.jsonl:2: not valid JSON"),
        "no-id": ({"pope/samples.jsonl": "\n".join([lines[0], json.dumps({"response": "Yes"})])}, "pope/samples.jsonl:2: a record needs its sample id"),
        "no-samples": ({"pope/samples.jsonl": None}, "pope/samples.jsonl: not found, so pope's per-sample records are missing"),
        "task-list": ({"pope/result.json": json.dumps({**result, "task": ["pope"]})}, "pope/result.json: not a mmhallu result.json (\"task\" is not a task name)"),
        "no-errors": ({"pope/result.json": json.dumps({k: v for k, v in result.items() if k != "errors"})}, "pope/result.json: not a mmhallu result.json (no 'errors')"),
        "correct": ({"pope/samples.jsonl": "\n".join([lines[0], json.dumps({**json.loads(lines[1]), "correct": "yes"})])},
                    "pope/samples.jsonl:2: not a record of a mmhallu run (\"correct\" is damaged)"),
    }
    for name, (files, why) in damages.items():
        run = tmp_path / name
        shutil.copytree(scored, run)
        for rel, text in files.items():
            if text is None:
                (run / rel).unlink()
            else:
                (run / rel).write_text(text)
        before = sorted(p.relative_to(run) for p in run.rglob("*"))
        for args in (("report", str(run), "--out", str(tmp_path / f"{name}.html")), ("compare", str(scored), str(run), "--out", str(tmp_path / f"{name}-cmp"))):
            assert _error(_cli(*args)).startswith(f"error: {run}/{why}")
        proc = _cli("leaderboard", str(scored), str(run), "--out", str(tmp_path / f"{name}-board"))
        assert proc.returncode == 0 and f"skipped {run}: {run}/{why}" in proc.stderr, proc.stderr
        assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_a_number_option_that_is_nan_or_infinite_is_refused(tmp_path):
    """float("nan") and float("inf") parse: a similarity threshold of nan excluded every noun from AMBER's object
    words, and an infinite --mix weight wrote Infinity into JSON."""
    from dataclasses import dataclass

    from mmhallu_eval.errors import TaskError
    from mmhallu_eval.options import opt, parse

    @dataclass
    class Options:
        similarity: float = opt(0.8, "threshold")

    for raw in ("nan", "inf", "-Infinity", float("nan")):
        with pytest.raises(TaskError, match=r"--task-arg t\.similarity=.*: expected a finite number"):
            parse(Options, {"similarity": raw}, "t", "--task-arg t.")
    assert parse(Options, {"similarity": "0.5"}, "t").similarity == 0.5
    (tmp_path / "a.json").write_text("[]")
    line = _error(_cli("score", "amber", "--data", "github", "--answers", str(tmp_path / "a.json"), "--out", str(tmp_path / "r"), "--similarity", "nan"))
    assert line.endswith("similarity=nan: expected a finite number") and not (tmp_path / "r").exists()


def test_library_renames_are_hidden_and_other_warnings_are_not():
    """TRL and PEFT still use transformers' old gradient-checkpointing names; the FutureWarnings that caused (three per
    DPO training) are hidden, and nothing else is."""
    import warnings

    from mmhallu_eval.quiet import library_renames_hidden

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with library_renames_hidden():
            warnings.warn("`gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
            warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
            warnings.warn("`use_cache` is deprecated", FutureWarning)
            warnings.warn("`gradient_checkpointing` is deprecated", UserWarning)
    assert [str(w.message) for w in seen] == ["`use_cache` is deprecated", "`gradient_checkpointing` is deprecated"]


def test_terminal_control_sequences_in_quoted_text_are_shown_not_obeyed(scored, tmp_path, capsys):
    """A server's error message, a folder name from an unpacked archive or a plugin's exception reach the terminal in
    `note:`, `skipped` and `error:` lines; an escape sequence in them could set the clipboard (OSC 52), erase the line
    above or reorder the text (a bidirectional override). They are printed as escapes; newlines and tabs stay."""
    from mmhallu_eval.backends.judge import OpenAIJudge
    from mmhallu_eval.terminal import printable

    hostile = "\x1b]52;c;ZWNobyBoaQ==\x07\x1b[1A\x1b[2K\r\x9b31m\u202etxt.exe"
    assert printable(hostile) == r"\x1b]52;c;ZWNobyBoaQ==\x07\x1b[1A\x1b[2K\r\x9b31m\u202etxt.exe"
    assert printable("two\tcolumns\nnext line, é 日本") == "two\tcolumns\nnext line, é 日本"
    with JudgeServer() as server:
        server.reply_fn = lambda prompt: "rating: 5"
        server.refuse_sampling = True
        server.refusal_text = hostile
        OpenAIJudge("reasoner", base_url=server.url).judge(["Rate this."], None)
    note = capsys.readouterr().err
    assert "note: reasoner refuses temperature" in note and r"\x1b]52;c;" in note and "\x1b" not in note and "\u202e" not in note
    run = tmp_path / f"shared{hostile}"  # a run folder named by someone else
    shutil.copytree(scored, run)
    (run / "pope" / "result.json").write_text("[1]")
    for proc in (_cli("leaderboard", str(scored), str(run), "--out", str(tmp_path / "board")), _cli("report", str(run), "--out", str(tmp_path / "r.html"))):
        assert printable(str(run)) in proc.stderr and "\x1b" not in proc.stderr and "\x9b" not in proc.stderr and "\r" not in proc.stderr, proc.stderr
