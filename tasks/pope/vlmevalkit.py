"""VLMEvalKit's POPE predictions: one row per distinct question, `category` listing every split that asks it
("adversarial,popular"); rows name their image in an image column, matched to --data by the image's number."""
from __future__ import annotations

from collections.abc import Hashable

from mmhallu_eval import PeerMetric, Sample, TaskError, VlmevalkitDataset, first_column, image_number, question_key

#: columns a VLMEvalKit POPE file may name its image in (its image itself is dropped from predictions)
IMAGE_COLUMNS = ("image_path", "image_source", "image_name", "image_id")
SPLITS = ("adversarial", "popular", "random")


def sample_key(s: Sample) -> Hashable:
    return (s.group, image_number(s.metadata["image"]), question_key(s.metadata["question"]))


def row_keys(row: dict[str, str]) -> list[Hashable]:
    splits = [c.strip() for c in row["category"].split(",") if c.strip()]
    unknown = [c for c in splits if c not in SPLITS]
    if not splits or unknown:
        raise TaskError(f"category {row['category']!r}: expected POPE splits ({', '.join(SPLITS)}), comma-separated")
    try:
        image = image_number(first_column(row, IMAGE_COLUMNS))
    except TaskError as exc:
        raise TaskError(f"{exc}: the row does not say which image it asks about, so it cannot be matched to --data") from None
    return [(split, image, question_key(row["question"])) for split in splits]


#: VLMEvalKit's POPE_rating: F1 (its "Overall" column), accuracy, precision and recall in percent, per split and pooled
METRICS = {f"{row}/{column}": PeerMetric(("groups", row, mine) if row != "Overall" else ("metrics", mine), 100.0)
           for row in ("Overall", *SPLITS) for column, mine in (("Overall", "f1"), ("acc", "accuracy"), ("precision", "precision"), ("recall", "recall"))}

DATASETS = (VlmevalkitDataset("POPE", sample_key, row_keys, columns=("question", "category"),
                              label={"Yes": "yes", "No": "no"}.get, metrics=METRICS),)
