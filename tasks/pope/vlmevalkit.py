"""VLMEvalKit's POPE predictions: one row per distinct question, `category` listing every split that asks it
("adversarial,popular"); rows naming their image in an image column are matched to --data by the image's number; a
file with no image column is scored on the questions it states (its `answer` is the label, `category` the splits)."""
from __future__ import annotations

from collections.abc import Hashable

from mmhallu_eval import PeerMetric, Sample, TaskError, VlmevalkitDataset, first_column, image_number, question_key

from .loaders import LABELS, SPLITS

#: columns a VLMEvalKit POPE file may name its image in (its image itself is dropped from predictions)
IMAGE_COLUMNS = ("image_path", "image_source", "image_name", "image_id")


def sample_key(s: Sample) -> Hashable:
    return (s.group, image_number(s.metadata["image"]), question_key(s.metadata["question"]))


def splits_of(row: dict[str, str]) -> list[str]:
    splits = [c.strip() for c in row["category"].split(",") if c.strip()]
    if not splits or any(c not in SPLITS for c in splits):
        raise TaskError(f"category {row['category']!r}: expected POPE splits ({', '.join(SPLITS)}), comma-separated")
    return splits


def own_samples(row: dict[str, str]) -> list[Sample]:
    """The row's questions as the file states them, one per split (ids SPLIT-INDEX)."""
    label = row.get("answer", "").strip().lower()
    if label not in LABELS:
        raise TaskError(f"answer {row.get('answer')!r}: expected Yes or No (the question's label)")
    return [Sample(id=f"{split}-{row['index']}", prompt=row["question"], target=label, group=split,
                   metadata={"question_id": row["index"], "question": row["question"]}) for split in splits_of(row)]


def row_keys(row: dict[str, str]) -> list[Hashable]:
    splits = splits_of(row)
    try:
        image = image_number(first_column(row, IMAGE_COLUMNS))
    except TaskError as exc:
        raise TaskError(f"{exc}: the row does not say which image it asks about, so it cannot be matched to --data") from None
    return [(split, image, question_key(row["question"])) for split in splits]


#: VLMEvalKit's POPE_rating: F1 (its "Overall" column), accuracy, precision and recall in percent, per split and pooled
METRICS = {f"{row}/{column}": PeerMetric(("groups", row, mine) if row != "Overall" else ("metrics", mine), 100.0)
           for row in ("Overall", *SPLITS) for column, mine in (("Overall", "f1"), ("acc", "accuracy"), ("precision", "precision"), ("recall", "recall"))}

DATASETS = (VlmevalkitDataset("POPE", sample_key, row_keys, columns=("question", "category"),
                              label={"Yes": "yes", "No": "no"}.get, metrics=METRICS, join_columns=IMAGE_COLUMNS, from_rows=own_samples),)
