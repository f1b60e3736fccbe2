"""POPE (Li et al., 2023): yes/no object-existence probing with random/popular/adversarial negatives."""
from __future__ import annotations

from typing import Any

from mmhallu_eval import Capabilities, GenerationConfig, LmmsEvalTask, MixProbe, Measure, Metric, Parser, Sample, Sums, TaskSpec, count, f1_of, quotient, task

from .loaders import DEFAULT_DATA, SPLITS, PopeOptions, load_samples
from .parsers import PARSERS, strict
from .vlmevalkit import DATASETS as VLMEVALKIT


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    parsed = parser(text)
    return {
        "parsed": parsed,
        "correct": parsed == sample.target,
        "strict_parsed": strict(text),
    }


def unit_stats(records: list[dict[str, Any]]) -> tuple[bool | int, ...]:
    """One answer: its cell of the confusion matrix (yes = positive; an unread answer is in no cell)."""
    r = records[0]
    pred, yes = r["parsed"], r["target"] == "yes"
    return (pred == "yes" and yes, pred == "yes" and not yes, pred == "no" and not yes, pred == "no" and yes, 1, yes,
            r.get("strict_parsed") is None)


def precision(s: Sums) -> float | None:
    return quotient(s["tp"], s["tp"] + s["fp"])


def recall(s: Sums) -> float | None:
    """Over all positives: an unread answer to a yes question is a miss."""
    return quotient(s["tp"], s["positives"])


def f1(s: Sums) -> float | None:
    return f1_of(precision(s), recall(s))


MEASURE = Measure(
    stats=("tp", "fp", "tn", "fn", "n", "positives", "unparseable_strict"),
    unit_stats=unit_stats,
    metrics=(
        Metric("accuracy", lambda s: quotient(s["tp"] + s["tn"], s["n"]), True, ci=True),
        Metric("precision", precision, True, ci=True),
        Metric("recall", recall, True, ci=True),
        Metric("f1", f1, True, ci=True),
        #: the share of *predicted* yes (lmms-eval reports the share of yes labels under this name)
        Metric("yes_ratio", lambda s: quotient(s["tp"] + s["fp"], s["n"]), None, ci=True),
        Metric("tp", count("tp")), Metric("fp", count("fp")), Metric("tn", count("tn")), Metric("fn", count("fn")),
        Metric("n", count("n")),
        Metric("unparsed", lambda s: int(s["n"] - s["tp"] - s["fp"] - s["tn"] - s["fn"])),
        Metric("unparseable_strict", count("unparseable_strict")),
    ),
    accuracy_metric="accuracy",
)


def right_answer(record: dict[str, Any], context: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """HA-DPO: a wrong yes/no answer (rejected) against the right one (chosen)."""
    if record.get("correct") is not False:
        return None
    right = "Yes" if record["target"] == "yes" else "No"
    if record["response"].strip() == right:
        return None
    return right, record["response"], {"pair_type": "yesno", "question_id": record["metadata"].get("question_id")}


#: lmms-eval's POPE metrics and the metrics here with the same name (its yes_ratio is the share of yes *labels*)
LMMS_EVAL_METRICS = {"pope_accuracy": "accuracy", "pope_precision": "precision", "pope_recall": "recall", "pope_f1_score": "f1",
                     "pope_yes_ratio": "yes_ratio"}


def lmms_eval_check(sample: Sample, row: dict[str, Any]) -> str | None:
    """A log line names its question_id in each metric object and its question in `input`."""
    logged = next((v for k, v in row.items() if k in LMMS_EVAL_METRICS and isinstance(v, dict)), {})
    qid = logged.get("question_id")
    if qid is not None and str(qid) != str(sample.metadata.get("question_id")):
        return f"question_id {qid} in the log but {sample.metadata.get('question_id')} ({sample.id}) in --data"
    text = row.get("input")
    if isinstance(text, str) and not text.startswith(str(sample.metadata.get("question"))):
        return f"{text[:60]!r} in the log but {sample.metadata.get('question')!r} ({sample.id}) in --data"
    return None


def lmms_eval_label(row: dict[str, Any]) -> Any:
    return next((v.get("prediction") for k, v in row.items() if k in LMMS_EVAL_METRICS and isinstance(v, dict)), None)


#: lmms-eval's pope (all three splits, in lmms-lab/POPE's order: adversarial, popular, random) and its split tasks
LMMS_EVAL = tuple(LmmsEvalTask(name, group, LMMS_EVAL_METRICS, lmms_eval_check, lmms_eval_label)
                  for name, group in (("pope", None), ("pope_adv", "adversarial"), ("pope_pop", "popular"), ("pope_random", "random")))


@task("pope")
def pope() -> TaskSpec:
    return TaskSpec(
        name="pope",
        version="1",
        description="POPE object-existence yes/no questions (random, popular, adversarial splits)",
        data_source=DEFAULT_DATA,
        loader=load_samples,
        score_sample=score_sample,
        measure=MEASURE,
        parsers=PARSERS,
        default_parser="pope-official",
        generation=GenerationConfig(max_new_tokens=128),
        headline=("f1", "accuracy"),
        options=PopeOptions,
        # POPE adversarial is where co-occurrence hallucination shows; its gap to random adds to the object error
        capabilities=Capabilities(failure_pair=right_answer, mix_probes=(MixProbe("obj", "adversarial", "accuracy", baseline="random"),),
                                  lmms_eval=LMMS_EVAL, vlmevalkit=VLMEVALKIT, scorecard_groups=SPLITS),
    )
