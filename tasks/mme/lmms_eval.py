"""lmms-eval's `mme` task: its log lines name the subtask and image (`question_id` "subtask/image") in their metric
object and the question in `input`, with lmms-eval's prompt text in place of " Please answer yes or no."."""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from mmhallu_eval import LmmsEvalTask, TaskError, file_key, question_key

from .vlmevalkit import sample_key  # the same question identity: subtask, image file name, question text

#: what lmms-eval 0.7.3's mme.yaml puts around the question (its default and per-model prompts)
PRE_PROMPTS = ("[UNUSED_TOKEN_146]user\n",)
POST_PROMPTS = ("\nAnswer the question using a single word or phrase.", "\nAnswer the question with Yes or No.", " Answer:",
                " Answer this question briefly[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n")
METRICS = ("mme_perception_score", "mme_cognition_score")


def question_of(text: str) -> str:
    for pre in PRE_PROMPTS:
        text = text.removeprefix(pre)
    for post in POST_PROMPTS:
        if text.endswith(post):
            return text[: -len(post)]
    return text


def line_key(row: dict[str, Any]) -> Hashable:
    logged = next((row[k] for k in METRICS if isinstance(row.get(k), dict)), None)
    if logged is None or not isinstance(row.get("input"), str):
        raise TaskError(f"no {' or '.join(METRICS)} object and input text")
    return (logged["category"], file_key(logged["question_id"]), question_key(question_of(row["input"])))


LMMS_EVAL = (LmmsEvalTask("mme", None, {"mme_perception_score": "perception", "mme_cognition_score": "cognition"},
                          key=sample_key, line_key=line_key),)
