"""VLMEvalKit's HallusionBench predictions: the questions with a figure only; each row's set, figure and question ids
are the fourth to sixth parts of its `index` and its `l2-category` is CATEGORY_SUBCATEGORY, as VLMEvalKit's own
rating reads them."""
from __future__ import annotations

from collections.abc import Hashable

from mmhallu_eval import PeerMetric, Sample, TaskError, VlmevalkitDataset


def sample_key(s: Sample) -> Hashable:
    m = s.metadata
    return (f"{m['category']}_{m['subcategory']}", m["set_id"], m["figure_id"], m["question_id"])


def row_keys(row: dict[str, str]) -> list[Hashable]:
    parts = row["index"].split("_")
    if len(parts) < 6:
        raise TaskError("index is not VLMEvalKit's HallusionBench form (its 4th–6th '_' parts are set, figure and question ids)")
    return [(row["l2-category"].strip(), parts[3], parts[4], parts[5])]


LEADERBOARD = ("metrics", "official_table", "leaderboard")
#: VLMEvalKit's Hallusion_rating (percent): aAcc = per question, qAcc = per question pair, fAcc = per figure
METRICS = {"Overall/aAcc": PeerMetric((*LEADERBOARD, "Acc per question (aAcc)")),
           "Overall/qAcc": PeerMetric((*LEADERBOARD, "Acc per question pair (qAcc)")),
           "Overall/fAcc": PeerMetric((*LEADERBOARD, "Acc per figure (fAcc)")),
           **{f"{c}/aAcc": PeerMetric(("metrics", "official_table", "per question", c, "Total")) for c in ("VD", "VS")},
           **{f"{c}/qAcc": PeerMetric(("metrics", "official_table", "per question pair", c, "Total")) for c in ("VD", "VS")},
           **{f"{c}/fAcc": PeerMetric(("metrics", "official_table", "per figure", c, "Correct")) for c in ("VD", "VS")}}

DATASETS = (VlmevalkitDataset("HallusionBench", sample_key, row_keys, columns=("l2-category",),
                              covers=lambda s: s.metadata["visual_input"] != "0", covers_note="VLMEvalKit leaves out the questions without a figure",
                              metrics=METRICS),)
