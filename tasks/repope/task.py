"""RePOPE (Neuhaus & Hein, 2025): POPE's COCO questions with corrected labels and ambiguous ones removed, scored with
RePOPE's own parser and metrics (`src/eval_utils.py` of github.com/YanNeu/RePOPE)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmhallu_eval import AnswerMatch, iter_answer_rows, match_answers, Capabilities, iter_jsonl, require_fields, GenerationConfig, Measure, Metric, Parser, Sample, Sums, TaskSpec, count, f1_of, quotient, task

from mmhallu_tasks.pope.parsers import PARSERS as POPE_PARSERS
from mmhallu_tasks.pope.task import right_answer

from .loaders import RepopeOptions, load_samples, load_with_removed


def repope_official(text: str) -> str | None:
    """`compute_answer`: "yes" anywhere in the lower-cased text, else "no" anywhere ("not", "know" and "snow" too),
    else unreadable (None)."""
    lowered = text.lower()
    if "yes" in lowered:
        return "yes"
    if "no" in lowered:
        return "no"
    return None


PARSERS = {
    "repope-official": Parser("repope-official", "1", repope_official, "RePOPE eval_utils.compute_answer: 'yes' substring, then 'no'"),
    "pope-official": POPE_PARSERS["pope-official"],
    "strict": POPE_PARSERS["strict"],
}


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    parsed = parser(text)
    return {"parsed": parsed, "correct": None if parsed is None else parsed == sample.target}


def unit_stats(records: list[dict[str, Any]]) -> tuple[bool | int, ...]:
    """One answer's confusion cell; an unreadable answer is in none (RePOPE leaves it out of every count)."""
    r = records[0]
    pred, yes = r["parsed"], r["target"] == "yes"
    return (pred == "yes" and yes, pred == "yes" and not yes, pred == "no" and not yes, pred == "no" and yes, 1)


def _parsed(s: Sums) -> float:
    return s["tp"] + s["fp"] + s["tn"] + s["fn"]


def precision(s: Sums) -> float | None:
    return quotient(s["tp"], s["tp"] + s["fp"])


def recall(s: Sums) -> float | None:
    """Over the read answers to yes questions (not over all positives, as POPE's own recall is)."""
    return quotient(s["tp"], s["tp"] + s["fn"])


def f1(s: Sums) -> float | None:
    return f1_of(precision(s), recall(s))


MEASURE = Measure(
    stats=("tp", "fp", "tn", "fn", "n"),
    unit_stats=unit_stats,
    metrics=(
        Metric("precision", precision, True, ci=True),
        Metric("recall", recall, True, ci=True),
        Metric("f1", f1, True, ci=True),
        Metric("accuracy", lambda s: quotient(s["tp"] + s["tn"], _parsed(s)), True, ci=True),
        Metric("yes_ratio", lambda s: quotient(s["tp"] + s["fp"], _parsed(s)), None, ci=True),
        Metric("tp", count("tp")), Metric("fp", count("fp")), Metric("tn", count("tn")), Metric("fn", count("fn")),
        Metric("n", count("n")),
        Metric("unparsed", lambda s: int(s["n"] - _parsed(s))),
    ),
    accuracy_metric="accuracy",
)


def read_answers(path: Path, options: RepopeOptions) -> tuple[list[Sample], AnswerMatch]:
    """POPE-style answers (JSONL: `question_id` or a namespaced `id`, and `text`), or with `repope.questions` the ids
    of a merged questions file. Answers to questions RePOPE removed are counted and listed (`removed_answers`), not
    scored."""
    samples, removed = load_with_removed(options)
    if options.questions:
        return samples, match_merged(samples, removed, path, Path(options.questions))
    match = match_answers(samples, path)
    single = next(iter(removed)) if len(removed) == 1 and len({s.group for s in samples}) == 1 else None
    def was_removed(key: str) -> bool:
        split, _, qid = key.rpartition("-")
        return qid in removed.get(split, ()) or (single is not None and key in removed[single])

    match.set_apart("removed", [k for k in match.unknown if was_removed(k)], "are to questions RePOPE removed")
    match.unknown = [k for k in match.unknown if not was_removed(k)]
    return samples, match


def match_merged(samples: list[Sample], removed: dict[str, dict[str, tuple[str, str]]], answers: Path, questions: Path) -> AnswerMatch:
    """Answers keyed by a merged questions file (LLaVA's llava_pope_test.jsonl, made from POPE's files of another
    commit, with other ids): each of its questions is found among the labelled ones by category (the split), image
    and question — the text up to its first line break, LLaVA's appended instruction left out."""
    labelled = {(s.group, s.metadata["image"], s.metadata["question"]): s.id for s in samples}
    gone = {(split, image, text) for split, rows in removed.items() for image, text in rows.values()}
    asked: dict[str, tuple[str, str, str]] = {}
    for lineno, row in iter_jsonl(questions):
        require_fields(row, ("question_id", "image", "text", "category"), f"{questions}:{lineno}", text=("image", "text"))
        asked[str(row["question_id"])] = (str(row["category"]), row["image"], row["text"].partition("\n")[0])
    match, removed_keys, elsewhere = AnswerMatch(), [], []
    for _, key, row in iter_answer_rows(answers):
        question = asked.get(key)
        if question is None:
            match.unknown.append(key)
        elif question in labelled:
            match.offer(labelled[question], row["text"], key)
        elif question in gone:
            removed_keys.append(key)
        else:
            elsewhere.append(key)
    match.set_apart("removed", removed_keys, "are to questions RePOPE removed")
    if elsewhere:
        match.unknown.extend(elsewhere)
        match.notes.append(f"{len(elsewhere)} answers are to questions of {questions.name} that the label files do not ask "
                           f"(first: {', '.join(elsewhere[:5])}): POPE's files changed between commits, and these are not "
                           "in the version the labels relabel")
    return match.finish(samples)


@task("repope")
def repope() -> TaskSpec:
    return TaskSpec(
        name="repope",
        version="1",
        description="POPE with RePOPE's corrected labels, RePOPE's parser and metrics (unreadable answers left out)",
        data_source="github:YanNeu/RePOPE annotations/coco_repope_<split>.json (pinned)",
        loader=load_samples,
        score_sample=score_sample,
        measure=MEASURE,
        parsers=PARSERS,
        default_parser="repope-official",
        generation=GenerationConfig(max_new_tokens=128),
        headline=("f1", "accuracy"),
        options=RepopeOptions,
        read_answers=read_answers,
        capabilities=Capabilities(failure_pair=right_answer, scorecard_groups=("adversarial", "popular", "random")),
    )
