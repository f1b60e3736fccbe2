"""`mmhallu compare` on run folders built from real POPE answers and from every task's fixtures."""
import json
import sys
from pathlib import Path

import pytest
from scipy import stats

from mmhallu_eval import get_task
from report_helpers import write_run
from cli_in_process import mmhallu

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def pope_runs(shared_benchmarks, tmp_path_factory):
    qfile = shared_benchmarks / "pope" / "coco_pope_adversarial.json"
    spec = get_task("pope")
    samples = spec.load({"data": str(qfile)})[:600]
    # base: a fixed pattern of mistakes; tuned: fixes 40 of the wrong "yes" answers, breaks 5 right ones
    base = {s.id: ("Yes" if (i % 5 == 0 or s.target == "yes") else "No") for i, s in enumerate(samples)}
    tuned = dict(base)
    wrong = [s.id for s in samples if base[s.id] == "Yes" and s.target == "no"]
    right = [s.id for s in samples if base[s.id] == "Yes" and s.target == "yes"]
    for i in wrong[:40]:
        tuned[i] = "No"
    for i in right[:5]:
        tuned[i] = "No"
    tuned[wrong[40]] = "No " + XSS  # a fixed answer carrying an XSS payload
    root = tmp_path_factory.mktemp("runs")
    return write_run(root / "base", "pope", samples, base), write_run(root / "tuned", "pope", samples, tuned), samples, base, tuned


def test_compare_pope_verdicts(pope_runs, tmp_path):
    base_dir, tuned_dir, samples, base, tuned = pope_runs
    proc = mmhallu("compare", str(base_dir), str(tuned_dir), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "compare.json").read_text())
    t = data["tasks"]["pope"]
    acc = t["metrics"]["accuracy"]
    assert set(acc) == {"base", "tuned", "delta", "ci_low", "ci_high", "p_value", "test", "higher_is_better", "better", "significant"}
    assert t["flipped"]["fixed"]["n"] == 41 and t["flipped"]["broken"]["n"] == 5
    assert acc["test"] == "mcnemar-chi2-cc"
    assert acc["p_value"] == pytest.approx(stats.chi2.sf((abs(5 - 41) - 1) ** 2 / 46, 1))
    assert acc["delta"] == pytest.approx(36 / 600) and acc["better"] == "tuned" and acc["significant"]
    assert acc["ci_low"] < acc["delta"] < acc["ci_high"] and acc["ci_low"] > 0
    before = json.loads((base_dir / "pope/result.json").read_text())["metrics"]
    after = json.loads((tuned_dir / "pope/result.json").read_text())["metrics"]
    for m in ("accuracy", "precision", "recall", "f1"):
        assert t["metrics"][m]["base"] == pytest.approx(before[m]) and t["metrics"][m]["tuned"] == pytest.approx(after[m])
    assert t["metrics"]["f1"]["test"] == "paired-bootstrap" and t["metrics"]["yes_ratio"]["better"] is None
    assert t["metrics"]["recall"]["better"] == "base"  # 5 positives lost
    assert "adversarial" in t["groups"]
    html = (tmp_path / "compare.html").read_text()
    assert "&lt;script&gt;" in html and XSS not in html
    # every scorecard row carries p adjusted for the number of rows; verdicts are by p unless --adjust holm
    assert data["adjust"] == "none" and all(r["p_holm"] >= r["p_value"] for r in data["scorecard"])
    assert "p (Holm)" in proc.stdout.splitlines()[0] and "<th>p (Holm)</th>" in html
    proc = mmhallu("compare", str(base_dir), str(tuned_dir), "--out", str(tmp_path / "holm"), "--adjust", "holm")
    assert proc.returncode == 0, proc.stderr
    holm = json.loads((tmp_path / "holm/compare.json").read_text())
    assert holm["adjust"] == "holm"
    assert [r["verdict"] == "no significant change" for r in holm["scorecard"]] == [r["p_holm"] >= 0.05 for r in holm["scorecard"]]
    proc = mmhallu("compare", str(base_dir), str(tuned_dir), "--out", str(tmp_path / "bad"), "--adjust", "bonferroni")
    assert proc.returncode != 0 and "--adjust 'bonferroni': choose none or holm" in proc.stderr and not (tmp_path / "bad").exists()


def test_result_files_written_by_score_are_runs_for_every_page(pope_runs, shared_benchmarks, tmp_path):
    """`mmhallu score --out scores/base.json` writes base.json and base.samples.jsonl: report, compare and leaderboard
    take those files as runs (they took only folders: "run folder not found"), and give the same numbers as the
    same answers in run folders."""
    base_dir, tuned_dir, samples, base, tuned = pope_runs
    scores = tmp_path / "scores"
    scores.mkdir()
    qfile = tmp_path / "pope" / "coco_pope_adversarial.json"  # the 600 questions the run folders answered
    qfile.parent.mkdir()
    qfile.write_text("\n".join((shared_benchmarks / "pope" / "coco_pope_adversarial.json").read_text().splitlines()[:600]) + "\n")
    ids = [json.loads(line)["question_id"] for line in qfile.read_text().splitlines()]
    for name, answers in (("base", base), ("tuned", tuned)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"question_id": q, "text": answers[s.id]}) + "\n" for q, s in zip(ids, samples)))
        done = mmhallu("score", "pope", "--data", str(qfile), "--answers", str(tmp_path / f"{name}.jsonl"), "--out", str(scores / f"{name}.json"))
        assert done.returncode == 0, done.stderr
    for args in (["report", str(scores / "base.json")], ["compare", str(scores / "base.json"), str(scores / "tuned.json")],
                 ["leaderboard", str(scores / "base.json"), str(scores / "tuned.json"), "--out", str(tmp_path / "board")],
                 ["compare", str(base_dir), str(tuned_dir), "--out", str(tmp_path / "folders")]):
        done = mmhallu(*args)
        assert done.returncode == 0, done.stderr
    assert (scores / "base.report.html").is_file() and (scores / "tuned.report.html").is_file()  # the leaderboard's links
    from_files = json.loads((scores / "compare.json").read_text())
    from_folders = json.loads((tmp_path / "folders" / "compare.json").read_text())
    assert from_files["tasks"]["pope"]["metrics"] == from_folders["tasks"]["pope"]["metrics"]
    assert from_files["base"]["run"] == str(scores / "base.json") and from_files["base"]["label"] == "base"
    board = (tmp_path / "board" / "leaderboard.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in board[1:]] == ["base", "tuned"]


def test_compare_refuses_different_parser_and_sample_sets(pope_runs, tmp_path):
    base_dir, _, samples, base, tuned = pope_runs
    other = write_run(tmp_path / "opera", "pope", samples, tuned, parser="pope-opera")
    proc = mmhallu("compare", str(base_dir), str(other), "--out", str(tmp_path))
    assert proc.returncode == 2 and "different parsers ('pope-official' vs 'pope-opera')" in proc.stderr
    fewer = write_run(tmp_path / "fewer", "pope", samples[:500], tuned)
    proc = mmhallu("compare", str(base_dir), str(fewer), "--out", str(tmp_path))
    assert proc.returncode == 2 and "100 only in base" in proc.stderr and "--intersect" in proc.stderr
    proc = mmhallu("compare", str(base_dir), str(fewer), "--out", str(tmp_path), "--intersect")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["intersect"] and data["tasks"]["pope"]["n_common"] == 500 and data["tasks"]["pope"]["n_base_only"] == 100
    assert "intersection of the two sample sets" in (tmp_path / "compare.html").read_text()


def test_compare_refuses_runs_whose_ids_name_other_questions(pope_runs, tmp_path):
    """Samples are paired by id: the same ids over other labels or other images (another copy of the benchmark) are
    refused, with --intersect too; the same files in another folder are the same questions, and records that name
    no image (answers scored from another tool's file, as CHAIR's captions are) are paired on their targets."""
    import dataclasses

    base_dir, _, samples, base, tuned = pope_runs
    relabelled = [dataclasses.replace(s, target="no" if s.target == "yes" else "yes") if k == 7 else s for k, s in enumerate(samples)]
    other_images = [dataclasses.replace(s, images=[f"/elsewhere/other_{k}.jpg"]) if k == 3 else s for k, s in enumerate(samples)]
    moved = [dataclasses.replace(s, images=[f"/elsewhere/{Path(str(im)).name}" for im in s.images]) for s in samples]
    for name, changed, said in (("relabelled", relabelled, f"sample {samples[7].id!r} is another question in each run (target"),
                                ("images", other_images, f"sample {samples[3].id!r} is another question in each run (images")):
        run = write_run(tmp_path / name, "pope", changed, tuned)
        for extra in ((), ("--intersect",)):
            proc = mmhallu("compare", str(base_dir), str(run), "--out", str(tmp_path / "out"), *extra)
            assert proc.returncode == 2 and said in proc.stderr and "different data" in proc.stderr, proc.stderr
    bare = [dataclasses.replace(s, images=[]) for s in samples]
    for name, changed in (("moved", moved), ("bare", bare)):
        proc = mmhallu("compare", str(base_dir), str(write_run(tmp_path / name, "pope", changed, tuned)), "--out", str(tmp_path / "out"))
        assert proc.returncode == 0, proc.stderr


def test_compare_mme_finer_chair(shared_benchmarks, tmp_path):
    """Every task with paired statistics compares on its own unit: MME images, FINER pairs, CHAIR captions."""
    mme = get_task("mme")
    samples, match = mme.answers(shared_benchmarks / "mme/llava-1.5-13b/results", {})
    texts = match.texts
    worse = {k: ("No" if i % 7 == 0 else v) for i, (k, v) in enumerate(texts.items())}
    b, t = write_run(tmp_path / "mb", "mme", samples, worse), write_run(tmp_path / "mt", "mme", samples, texts)
    chair = get_task("chair")
    base_caps = shared_benchmarks / "chair/opera_captions"
    cs, cmatch = chair.answers(base_caps / "llava-1.5/greedy.jsonl", {"gt": str(base_caps / "gt_objects.json")})
    ctexts = cmatch.texts
    _, omatch = chair.answers(base_caps / "llava-1.5/ours.jsonl", {"gt": str(base_caps / "gt_objects.json")})
    otexts = omatch.texts
    write_run(b, "chair", cs, ctexts)
    write_run(t, "chair", cs, otexts)
    proc = mmhallu("compare", str(b), str(t), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "compare.json").read_text())
    total = data["tasks"]["mme"]["metrics"]["total"]
    assert total["tuned"] == pytest.approx(json.loads((t / "mme/result.json").read_text())["metrics"]["total"])
    assert total["better"] == "tuned" and total["significant"] and total["test"] == "paired-bootstrap"
    assert data["tasks"]["mme"]["groups"]["existence"]["acc"]["test"].startswith("mcnemar")
    ch = data["tasks"]["chair"]["metrics"]
    assert ch["chair_i"]["higher_is_better"] is False and ch["chair_i"]["base"] == pytest.approx(0.12727752838658568)
    assert ch["chair_s"]["better"] == ("tuned" if ch["chair_s"]["delta"] < 0 else "base")


def test_compare_and_leaderboard_amber_hallusionbench_repope(shared_benchmarks, tmp_path):
    """The three newer suites compare on their own units (AMBER answers, HallusionBench question sets, RePOPE
    questions) and give the leaderboard their headline columns."""
    pytest.importorskip("spacy")
    from parity_cases import amber_answers, amber_vectors, hallusion_case, repope_answers

    base, tuned = tmp_path / "base", tmp_path / "tuned"
    folder = shared_benchmarks / "repope"
    repope = get_task("repope")
    rs = repope.load({"data": str(folder)})
    answers = {json.loads(x)["question_id"]: json.loads(x)["text"] for x in repope_answers(folder, tmp_path / "r.jsonl").read_text().splitlines()}
    rtexts = {s.id: answers[s.id] for s in rs}
    write_run(base, "repope", rs, rtexts)
    write_run(tuned, "repope", rs, {k: ("Yes" if s.target == "yes" else "No") if i % 3 == 0 else rtexts[k] for i, (k, s) in enumerate(zip(rtexts, rs))})

    amber_data = shared_benchmarks / "amber"
    options = {"data": str(amber_data), "spacy_model": str(amber_vectors(amber_data, tmp_path / "vectors"))}
    amber = get_task("amber")
    samples = amber.load(options)
    chosen = samples[:60] + samples[1004:1604]
    atexts = {str(r["id"]): r["response"] for r in json.loads(amber_answers(amber_data, tmp_path / "a.json").read_text())}
    write_run(base, "amber", chosen, {s.id: atexts[s.id] for s in chosen}, options=options)
    better = {s.id: ("No" if s.target == "no" else "Yes") if s.group != "generative" else "A scene." for s in chosen}
    write_run(tuned, "amber", chosen, better, options=options)

    hb = get_task("hallusionbench")
    result, _ = hallusion_case(shared_benchmarks / "hallusionbench/HallusionBench.json", tmp_path / "hb.json", tmp_path / "replies.json")
    hoptions = {"data": str(shared_benchmarks / "hallusionbench/HallusionBench.json")}
    hs, hmatch = hb.answers(result, hoptions)
    write_run(base, "hallusionbench", hs, hmatch.texts, parser="yesno", options=hoptions)
    write_run(tuned, "hallusionbench", hs, {s.id: "Yes" if s.target == "1" else "No" for s in hs}, parser="yesno", options=hoptions)

    proc = mmhallu("compare", str(base), str(tuned), "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert data["tasks"]["repope"]["metrics"]["accuracy"]["better"] == "tuned"
    assert data["tasks"]["amber"]["metrics"]["accuracy"]["better"] == "tuned"
    assert data["tasks"]["amber"]["metrics"]["chair"]["higher_is_better"] is False
    assert data["tasks"]["hallusionbench"]["metrics"]["qacc"]["better"] == "tuned"
    assert data["tasks"]["hallusionbench"]["metrics"]["aacc"]["significant"]
    proc = mmhallu("leaderboard", str(base), str(tuned), "--out", str(tmp_path / "board.html"))
    assert proc.returncode == 0, proc.stderr
    header = (tmp_path / "board.csv").read_text().splitlines()[0]
    for column in ("amber_score", "qacc", "facc", "repope"):
        assert column in header, header


def test_compare_says_when_the_runs_decoded_differently(pope_runs, tmp_path):
    """A base run decoded greedily against a tuned run sampled (or a server that refused the temperature): the deltas
    mix the tuning with the decoding, so compare.json, the command and the page say which settings differ; runs with
    the same settings get no note."""
    base_dir, _, samples, base, tuned = pope_runs
    greedy = {"max_new_tokens": 128, "temperature": 0.0, "top_p": 1.0}
    runs = {}
    for name, answers, extra in (("a", base, {"generation": greedy, "reasoning": "strip"}),
                                 ("b", tuned, {"generation": greedy, "reasoning": "strip"}),
                                 ("c", tuned, {"generation": {**greedy, "temperature": 0.7}, "reasoning": "strip", "sampling": XSS})):
        runs[name] = write_run(tmp_path / name, "pope", samples, answers)
        result_path = runs[name] / "pope/result.json"
        result_path.write_text(json.dumps({**json.loads(result_path.read_text()), **extra}))
    same = mmhallu("compare", str(runs["a"]), str(runs["b"]), "--out", str(tmp_path / "same"))
    assert same.returncode == 0 and "note:" not in same.stderr, same.stderr
    assert "settings_differ" not in json.loads((tmp_path / "same/compare.json").read_text())["tasks"]["pope"]
    proc = mmhallu("compare", str(runs["a"]), str(runs["c"]), "--out", str(tmp_path / "differ"))
    assert proc.returncode == 0, proc.stderr
    differ = json.loads((tmp_path / "differ/compare.json").read_text())["tasks"]["pope"]["settings_differ"]
    assert differ == {"generation": {"base": greedy, "tuned": {**greedy, "temperature": 0.7}}, "sampling": {"base": None, "tuned": XSS}}
    assert "note: pope: the runs' answers were made with different generation" in proc.stderr and '"temperature": 0.7' in proc.stderr
    kept = write_run(tmp_path / "kept", "pope", samples, tuned)  # as `mmhallu score --reasoning keep` records it
    result_path = kept / "pope/result.json"
    result_path.write_text(json.dumps({**json.loads(result_path.read_text()), "reasoning": "keep"}))
    rescored = mmhallu("compare", str(runs["a"]), str(kept), "--out", str(tmp_path / "kept_cmp"))
    assert rescored.returncode == 0 and "different reasoning" in rescored.stderr and "different generation" not in rescored.stderr
    html = (tmp_path / "differ/compare.html").read_text()
    assert "made with different generation" in html and "made with different sampling" in html and "<script>" not in html


def test_a_leaderboard_notes_runs_scored_or_made_differently(pope_runs, tmp_path):
    """A column of one task holds every run's number: where the runs were scored by other parsers, or their answers
    made with other decoding, the page and stderr say which runs differ in what; alike runs get no note."""
    base_dir, tuned_dir, samples, base, tuned = pope_runs
    opera = write_run(tmp_path / "opera", "pope", samples, tuned, parser="pope-opera")
    alike = mmhallu("leaderboard", str(base_dir), str(tuned_dir), "--out", str(tmp_path / "alike"))
    assert alike.returncode == 0 and "note:" not in alike.stderr, alike.stderr
    assert 'class="notes"' not in (tmp_path / "alike/leaderboard.html").read_text()
    proc = mmhallu("leaderboard", str(base_dir), str(opera), "--out", str(tmp_path / "board"))
    assert proc.returncode == 0, proc.stderr
    assert 'note: pope: the runs differ in parser (model (base): "pope-official"; model (opera): "pope-opera")' in proc.stderr
    html = (tmp_path / "board/leaderboard.html").read_text()
    assert "the runs differ in parser" in html and "were scored differently" in html
    md = (tmp_path / "board/leaderboard.md").read_text()
    assert md.count("\n- pope: the runs differ in parser") == 1 and "Notes:" in md
    assert "Notes:" not in (tmp_path / "alike/leaderboard.md").read_text()
    greedy = {"max_new_tokens": 128, "temperature": 0.0, "top_p": 1.0}
    for run, generation in ((base_dir, greedy), (tuned_dir, {**greedy, "max_new_tokens": 16})):
        copy = tmp_path / "made" / run.name
        copy.mkdir(parents=True)
        for f in ("manifest.json", "pope/samples.jsonl", "pope/result.json"):
            (copy / f).parent.mkdir(exist_ok=True)
            (copy / f).write_bytes((run / f).read_bytes())
        result_path = copy / "pope/result.json"
        result_path.write_text(json.dumps({**json.loads(result_path.read_text()), "generation": generation, "reasoning": "strip"}))
    made = mmhallu("leaderboard", str(tmp_path / "made/base"), str(tmp_path / "made/tuned"), "--out", str(tmp_path / "made_board"))
    assert made.returncode == 0 and made.stderr.count("note:") == 1 and "differ in generation" in made.stderr and "were made differently" in made.stderr
    fewer = write_run(tmp_path / "fewer", "pope", samples[:500], tuned)
    sized = mmhallu("leaderboard", str(base_dir), str(fewer), "--out", str(tmp_path / "sized_board"))
    assert sized.returncode == 0 and sized.stderr.count("note:") == 1, sized.stderr
    assert "note: pope: the runs evaluated different numbers of samples (model (base): 600; model (fewer): 500)" in sized.stderr
    assert "measured on different sample sets" in (tmp_path / "sized_board/leaderboard.md").read_text()


def test_the_loops_compare_stage_takes_the_same_adjustment(pope_runs, tmp_path):
    """`mmhallu loop --adjust holm` draws its compare stage's verdicts as `mmhallu compare --adjust holm` does; a
    value it does not know is refused before the loop's folder is made."""
    from mmhallu_eval.errors import TaskError
    from mmhallu_eval.train.loop import LoopConfig, _compare_stage, run_loop

    base_dir, tuned_dir, *_ = pope_runs
    cfg = LoopConfig(model="m", train_annotations="a", train_images="i", tasks=["pope"], out=tmp_path / "loop", adjust="holm")
    stage = _compare_stage(cfg, base_dir, tuned_dir, log=lambda line: None)
    assert stage.inputs["adjust"] == "holm"
    stage.run()
    looped = json.loads((tmp_path / "loop/compare/compare.json").read_text())
    proc = mmhallu("compare", str(base_dir), str(tuned_dir), "--out", str(tmp_path / "holm"), "--adjust", "holm")
    assert proc.returncode == 0, proc.stderr
    assert looped["adjust"] == "holm" and looped["scorecard"] == json.loads((tmp_path / "holm/compare.json").read_text())["scorecard"]
    with pytest.raises(TaskError, match="loop: adjust 'bh': one of none, holm"):
        run_loop(LoopConfig(model="m", train_annotations="a", train_images="i", tasks=["pope"], out=tmp_path / "l2", adjust="bh"))
    proc = mmhallu("loop", "--model", "m", "--train-data", "a.json", "--train-images", "i", "--tasks", "pope", "--out", str(tmp_path / "l3"),
                   "--adjust", "bh")
    assert proc.returncode != 0 and "--adjust 'bh': choose none or holm" in proc.stderr
    assert not (tmp_path / "l2").exists() and not (tmp_path / "l3").exists()
