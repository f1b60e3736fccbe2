"""HallusionBench (Guan et al., CVPR 2024, arXiv 2310.14566): yes/no questions on original and edited figures (and
without a figure), judged by an LLM with the official prompts, scored as the official `evaluation.py` + `utils.py`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmhallu_eval import (AnswerMatch, Capabilities, GenerationConfig, Measure, Metric, Parser, PooledMetric, Sample, ratio, TaskError, TaskSpec,
                          atomic_write_json, count, create_judge, pooled_totals, judge_cache, read_json, task)

from mmhallu_tasks.pope.parsers import strict

from .loaders import FIELDS, HallusionOptions, check_row, data_file, key_of, load_rows, load_samples, sample_of, set_of
from .metrics import STATS, analysis_share, official_table, set_stats
from .verdicts import (CORRECT, INCORRECT, UNCLEAR, correctness_prompt, correctness_verdict, official_cache, same_prompt, same_verdict,
                       saved_replies)
from .lmms_eval import LMMS_EVAL
from .vlmevalkit import DATASETS as VLMEVALKIT

PROMPT_VERSION = "hallusionbench-utils.py-744007c"
PARSERS = {
    "hallusionbench-official": Parser("hallusionbench-official", "1", correctness_verdict,
                                      "the official judge rules: 'incorrect' before 'correct', else unclear; 'same' anywhere"),
    "yesno": Parser("yesno", "1", strict, "not official, no judge: the answer's leading yes/no against gt_answer, else unclear; "
                                          "same when the two answers read alike"),
}


def assign_correctness(m: dict[str, str], verdict: str) -> bool:
    """Correct when the verdict is correct; on a question without a figure (VS, figure 0), unclear counts as correct."""
    if m["category"] == "VS" and int(m["figure_id"]) == 0:
        return verdict in (CORRECT, UNCLEAR)
    return verdict == CORRECT


def _judge_free(samples: list[Sample], texts: list[str]) -> list[dict[str, Any]]:
    read = {s.id: strict(t) for s, t in zip(samples, texts)}
    out = []
    for s in samples:
        answer = read[s.id]
        verdict = UNCLEAR if answer is None else CORRECT if (answer == "yes") == (s.target == "1") else INCORRECT
        original = read.get(_original_key(s))
        paired = s.metadata["figure_id"] != "0" and _original_key(s) in read
        out.append({"verdict": verdict, "same": str(int(answer is not None and answer == original)) if paired else None,
                    "judge": {"kind": "none", "parser": "yesno"}})
    return out


def _original_key(s: Sample) -> str:
    m = s.metadata
    return "_".join((m["category"], m["subcategory"], m["set_id"], "0", m["question_id"]))


def _from_judge(samples: list[Sample], texts: list[str], options: HallusionOptions) -> list[dict[str, Any]]:
    """Both official prompts per question (the consistency prompt only where the script reads its verdict: figures
    other than 0), through the judge client, cached by judge and prompt; a failed call is an error, never a verdict."""
    by_key = dict(zip((s.id for s in samples), texts))
    judge = create_judge(options)
    cache = judge_cache(options.judge_cache)
    prompts, owners = [], []
    for s, t in zip(samples, texts):
        prompts.append(correctness_prompt(s.metadata, t))
        owners.append((s.id, "correctness"))
        if s.metadata["figure_id"] != "0" and _original_key(s) in by_key:
            prompts.append(same_prompt(t, by_key[_original_key(s)]))
            owners.append((s.id, "same"))
    try:
        verdicts = judge.judge(prompts, cache, max_tokens=64)
    finally:
        if cache is not None:
            cache.close()
    replies: dict[str, dict[str, Any]] = {s.id: {} for s in samples}
    for (sid, kind), v in zip(owners, verdicts):
        replies[sid][f"{kind}_reply"] = v.reply
        if v.error is not None:
            replies[sid]["error"] = f"judge_error: {v.error}"
    return [_verdict_of(s, replies[s.id], judge.describe(), _original_key(s) in by_key) for s in samples]


def _verdict_of(s: Sample, replies: dict[str, Any], judge: dict[str, Any], paired: bool = True) -> dict[str, Any]:
    """The verdicts of one question from its judge replies; `paired`: its figure-0 question was answered too (only
    then is there a consistency reply to read)."""
    if replies.get("error"):
        return {"error": replies["error"], "judge": judge}
    if replies.get("correctness_reply") is None:
        return {"error": f"no_verdict: no correctness reply for {s.id}", "judge": judge}
    out = {"verdict": correctness_verdict(replies["correctness_reply"]), "same": None, "judge": judge,
           "judge_reply": replies["correctness_reply"]}
    if s.metadata["figure_id"] != "0" and paired:
        if not isinstance(replies.get("same_reply"), str):
            return {"error": f"no_verdict: no consistency reply for {s.id} (needed for figures other than 0)", "judge": judge}
        out.update(same=same_verdict(replies["same_reply"]), same_reply=replies["same_reply"])
    return out


def score_batch(samples: list[Sample], texts: list[str], parser: Parser, options: HallusionOptions) -> list[dict[str, Any]]:
    """Verdicts, then correctness. A question on an edited figure whose figure-0 question was not answered at all (a
    file that leaves the no-figure questions out, like VLMEvalKit's) is scored for correctness and marked no_original:
    the LH/VI analysis, which needs that answer, is then not computed; one whose figure-0 verdict failed is an error."""
    answered = {s.id for s in samples}
    if parser.name == "yesno":
        judged = _judge_free(samples, texts)
    elif options.official_cache:
        found = official_cache(options.official_cache)
        info = {"kind": "official-cache", "folder": options.official_cache}
        judged = [{"verdict": found[s.id]["correctness"], "same": found[s.id]["same"] if s.metadata["figure_id"] != "0" else None, "judge": info}
                  if s.id in found else {"error": f"no_verdict: {s.id} is not in the official cache files", "judge": info} for s in samples]
    elif options.judge_replies:
        saved = saved_replies(options.judge_replies)
        info = {"kind": "saved-replies", "file": options.judge_replies}
        judged = [_verdict_of(s, saved.get(s.id, {}), info, _original_key(s) in answered) for s in samples]
    else:
        judged = _from_judge(samples, texts, options)
    failed = {s.id for s, j in zip(samples, judged) if "error" in j}
    out = []
    for s, j in zip(samples, judged):
        if "error" not in j and s.metadata["figure_id"] != "0" and _original_key(s) not in answered:
            j = {**j, "same": None, "no_original": True}
        elif "error" not in j and s.metadata["figure_id"] != "0" and _original_key(s) in failed:
            j = {"error": f"no_original_verdict: the figure-0 question {_original_key(s)} has no verdict, which the LH/VI analysis needs",
                 "judge": j.get("judge")}
        if "error" in j:
            out.append(j)
            continue
        if j["verdict"] not in (INCORRECT, CORRECT, UNCLEAR):
            out.append({"error": f"no_verdict: {s.id}: verdict {j['verdict']!r} is not 0, 1 or 2", "judge": j.get("judge")})
            continue
        out.append({"parsed": j["verdict"], "same": j["same"], "correct": assign_correctness(s.metadata, j["verdict"]),
                    **{k: v for k, v in j.items() if k not in ("verdict", "same")}})
    return out


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    raise TaskError("HallusionBench needs every answer of a question pair: scoring goes through score_batch")


_F = {
    "qacc": (ratio("pair_correct", "pair_n"), True), "facc": (ratio("fig_correct", "fig_n"), True),
    "easy_aacc": (ratio("easy_correct", "easy_n"), True), "hard_aacc": (ratio("hard_correct", "hard_n"), True),
    "aacc": (ratio("q_correct", "q_n"), True),
}
METRICS = (
        *(Metric(name, f, better, ci=True) for name, (f, better) in _F.items()),
        Metric("yes_no_bias_pct_diff", lambda s: (s["yes_pred"] - s["yes_gt"]) / s["q_n"] if s["q_n"] else None),
        Metric("yes_no_bias_fp_ratio", lambda s: (s["fp_n"] - s["fp_gt"]) / s["fp_n"] if s["fp_n"] else None),
        Metric("figure_score", ratio("fig_score", "fig_n"), True),
        Metric("consistency_correct", ratio("fig_correct", "fig_n"), True),
        Metric("consistency_inconsistent", ratio("fig_inconsistent", "fig_n"), False),
        Metric("consistency_wrong", ratio("fig_wrong", "fig_n"), False),
        Metric("lh", analysis_share("lh")), Metric("vi", analysis_share("vi")), Metric("mixed", analysis_share("mix")),
        Metric("unclear", count("unclear")), Metric("no_original", count("no_original")), Metric("n", count("q_n")),
)
MEASURE = Measure(
    stats=STATS,
    unit_stats=set_stats,
    unit=lambda r: set_of(r["metadata"]),
    metrics=METRICS,
    pooled=pooled_totals(STATS, METRICS, PooledMetric("official_table", official_table)),  # type: ignore[arg-type]
    group_order=("VD", "VS"),
    accuracy_metric="aacc",
    describe_unit=lambda key: f"set {key}",
    extra=lambda groups, head: {"judge": next((r.get("judge") for r in head if r.get("judge")), None), "prompt_version": PROMPT_VERSION},
)



def read_answers(path: Path, options: HallusionOptions) -> tuple[list[Sample], AnswerMatch]:
    """The official result format: HallusionBench.json's rows, each with `model_prediction`. Rows are checked against
    `hallusionbench.data` (unknown keys are named); the fields the scorer reads come from the row, as in the script."""
    known = {key_of(r, "data") for r in load_rows(data_file(options.data))}
    rows = read_json(path)
    if not isinstance(rows, list):
        raise TaskError(f"{path}: expected the official result format: a JSON list of HallusionBench rows with model_prediction")
    match, samples = AnswerMatch(), []
    suffix = options.prompt_suffix.replace("\\n", "\n")
    for i, row in enumerate(rows):
        where = f"{path}: row {i}"
        row = check_row(row, where)
        if "model_prediction" not in row:
            raise TaskError(f"{where} ({key_of(row, where)}): no 'model_prediction' (the model's answer)")
        sample = sample_of(row, options.images, suffix)
        if sample.id not in known:
            match.unknown.append(sample.id)
            continue
        if match.offer(sample.id, row["model_prediction"]):
            samples.append(sample)
    return samples, match


def export(records: list[dict[str, Any]], task_dir: Path) -> None:
    """`<run>/hallusionbench/HallusionBench_result.json`: the rows with model_prediction, the file evaluation.py reads."""
    rows = [{**{f: r["metadata"][f] for f in FIELDS}, "filename": r["metadata"].get("filename"), "model_prediction": r["response"] or ""}
            for r in records]
    atomic_write_json(Path(task_dir) / "HallusionBench_result.json", rows)


@task("hallusionbench")
def hallusionbench() -> TaskSpec:
    return TaskSpec(
        name="hallusionbench",
        version="1",
        description="HallusionBench yes/no question pairs on original and edited figures: qAcc, fAcc, aAcc, bias, LH/VI, official judge prompts and rules",
        data_source="github:tianyi-lab/HallusionBench HallusionBench.json (pinned); figures from hallusion_bench.zip",
        loader=load_samples,
        score_sample=score_sample,
        score_batch=score_batch,
        measure=MEASURE,
        parsers=PARSERS,
        default_parser="hallusionbench-official",
        generation=GenerationConfig(max_new_tokens=256),
        headline=("qacc", "facc", "aacc"),
        options=HallusionOptions,
        read_answers=read_answers,
        export=export,
        capabilities=Capabilities(judged=True, vlmevalkit=VLMEVALKIT, lmms_eval=LMMS_EVAL),
    )
