"""VLMEvalKit's AMBER predictions: the discriminative questions only, each row naming its image (`image_path`) and
question; VLMEvalKit asks them with "\nPlease answer yes or no." appended."""
from __future__ import annotations

from collections.abc import Hashable

from mmhallu_eval import PeerMetric, Sample, VlmevalkitDataset, file_key, question_key


def sample_key(s: Sample) -> Hashable:
    return (file_key(s.metadata["image"]), question_key(s.metadata["question"]))


def row_keys(row: dict[str, str]) -> list[Hashable]:
    return [(file_key(row["image_path"]), question_key(row["question"]))]


#: VLMEvalKit's AMBER_rating: plain accuracy in percent per dimension ("Avg ACC", their mean, has no official twin)
METRICS = {name: PeerMetric(("metrics", "official_table", section, "Accuracy"))
           for name, section in (("Existence", "existence"), ("Attribute", "attribute"), ("Relation", "relation"))}

DATASETS = (VlmevalkitDataset("AMBER", sample_key, row_keys, columns=("question", "image_path"),
                              label={"Yes": "yes", "No": "no"}.get, covers=lambda s: s.target is not None,
                              covers_note="VLMEvalKit asks only the discriminative questions", metrics=METRICS),)
