"""lmms-eval's `hallusion_bench_image` task: the questions with a figure; each log line's metric objects hold the whole
document (category, subcategory, set, figure and question ids)."""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from mmhallu_eval import LmmsEvalTask, PeerMetric, Sample, TaskError

IDS = ("category", "subcategory", "set_id", "figure_id", "question_id")
LEADERBOARD = ("metrics", "official_table", "leaderboard")


def sample_key(s: Sample) -> Hashable:
    return tuple(str(s.metadata[k]) for k in IDS)


def line_key(row: dict[str, Any]) -> Hashable:
    doc = next((row[k] for k in ("aAcc", "qAcc", "fAcc") if isinstance(row.get(k), dict)), None)
    if doc is None or any(k not in doc for k in IDS):
        raise TaskError("no aAcc/qAcc/fAcc object holding the document's ids")
    return tuple(str(doc[k]) for k in IDS)


#: its aggregates are the official script's leaderboard numbers (percent, rounded to 4 places)
METRICS = {"aAcc": PeerMetric((*LEADERBOARD, "Acc per question (aAcc)")), "qAcc": PeerMetric((*LEADERBOARD, "Acc per question pair (qAcc)")),
           "fAcc": PeerMetric((*LEADERBOARD, "Acc per figure (fAcc)"))}

LMMS_EVAL = (LmmsEvalTask("hallusion_bench_image", None, METRICS, key=sample_key, line_key=line_key,
                          covers=lambda s: s.metadata["visual_input"] != "0", covers_note="its image split leaves out the questions without a figure"),)
