"""VLMEvalKit's MME predictions: rows carry the subtask (`category`), the image (`image_path`) and the question."""
from __future__ import annotations

from collections.abc import Hashable

from mmhallu_eval import PeerMetric, Sample, VlmevalkitDataset, file_key, question_key

from .loaders import SUBTASKS


def sample_key(s: Sample) -> Hashable:
    return (s.metadata["subtask"], file_key(s.metadata["image"]), question_key(s.metadata["question"]))


def row_keys(row: dict[str, str]) -> list[Hashable]:
    return [(row["category"].strip(), file_key(row["image_path"]), question_key(row["question"]))]


#: VLMEvalKit's MME_rating: per subtask 100·acc + 100·acc+, and the perception and reasoning (cognition) totals
METRICS = {"perception": PeerMetric(("metrics", "perception")), "reasoning": PeerMetric(("metrics", "cognition")),
           **{name: PeerMetric(("groups", name, "score")) for name in SUBTASKS}}

DATASETS = (VlmevalkitDataset("MME", sample_key, row_keys, columns=("question", "category", "image_path"),
                              label={"Yes": "yes", "No": "no", "Unknown": "other"}.get, metrics=METRICS),)
