"""POPE data sources: official question files, a merged JSONL with `category`, or the lmms-lab/POPE dataset."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmhallu_eval import SHORT_ANSWER, Sample, TaskError, TaskOptions, iter_jsonl, load_hf_dataset, opt, require_fields, resolve_image

HF_PREFIX = "hf:"
DEFAULT_DATA = "hf:lmms-lab/POPE"
LABELS = ("yes", "no")
#: the three POPE splits, in the order lmms-lab/POPE and the compare scorecard list them
SPLITS = ("adversarial", "popular", "random")


def split_from_filename(path: Path) -> str:
    """`coco_pope_adversarial.json` → `adversarial` (the POPE naming, RePOPE's `coco_repope_*` too); other names
    keep their stem."""
    found = re.search(r"_(?:re)?pope_(.+)$", path.stem)
    return found.group(1) if found else path.stem


def _check_label(label: Any, where: str) -> str:
    value = str(label).strip().lower()
    if value not in LABELS:
        raise TaskError(f"{where}: label must be 'yes' or 'no', got {label!r}")
    return value


def _with_suffix(text: str, suffix: str) -> str:
    return text if not suffix or text.endswith(suffix) else text + suffix


def load_question_file(path: Path, images: str | None, suffix: str) -> list[Sample]:
    """One official POPE file (JSON lines: question_id, image, text, label); split from the file name."""
    split = split_from_filename(path)
    samples = []
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        require_fields(row, ("question_id", "image", "text", "label"), where, text=("image", "text"))
        samples.append(
            Sample(
                id=f"{split}-{row['question_id']}",
                prompt=_with_suffix(row["text"], suffix),
                images=[resolve_image(row["image"], images)],
                target=_check_label(row["label"], where),
                group=split,
                metadata={"question_id": row["question_id"], "image": row["image"], "question": row["text"]},
            )
        )
    return samples


def load_merged(path: Path, images: str | None, labels_dir: str | None, suffix: str) -> list[Sample]:
    """A merged JSONL with `category` (LLaVA's llava_pope_test.jsonl). Without `label` fields the labels come
    from `labels_dir/coco_pope_<category>.json`, paired in order as LLaVA's eval_pope.py does."""
    rows = list(iter_jsonl(path))
    by_cat: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for lineno, row in rows:
        require_fields(row, ("question_id", "image", "text", "category"), f"{path}:{lineno}", text=("image", "text"))
        by_cat.setdefault(str(row["category"]), []).append((lineno, row))
    label_of: dict[int, str] = {}
    if any("label" not in row for _, row in rows):
        if not labels_dir:
            raise TaskError(
                f"{path}: lines have no 'label'; pass the official question files with "
                "--task-arg pope.labels=DIR (containing coco_pope_<category>.json)"
            )
        for cat, items in by_cat.items():
            label_files = sorted(Path(labels_dir).glob(f"*_pope_{cat}.json"))
            if len(label_files) != 1:
                raise TaskError(f"{labels_dir}: expected one *_pope_{cat}.json for category {cat!r}, found {len(label_files)}")
            official = [(n, r) for n, r in iter_jsonl(label_files[0])]
            if len(official) != len(items):
                raise TaskError(
                    f"{label_files[0]}: {len(official)} questions but {path} has {len(items)} in category {cat!r}"
                )
            for (lineno, row), (olineno, orow) in zip(items, official):
                if not str(row["text"]).startswith(str(orow.get("text", ""))) or row["image"] != orow.get("image"):
                    raise TaskError(
                        f"{path}:{lineno} does not match {label_files[0]}:{olineno} "
                        f"(question/image differ); the label files must be the ones the questions came from"
                    )
                label_of[lineno] = _check_label(orow.get("label"), f"{label_files[0]}:{olineno}")
    samples = []
    for lineno, row in rows:
        label = label_of.get(lineno) or _check_label(row.get("label"), f"{path}:{lineno}")
        samples.append(
            Sample(
                id=str(row["question_id"]),
                prompt=_with_suffix(row["text"], suffix),
                images=[resolve_image(row["image"], images)],
                target=label,
                group=str(row["category"]),
                metadata={"question_id": row["question_id"], "image": row["image"], "question": row["text"]},
            )
        )
    return samples


def load_hf(name: str, images: str | None, suffix: str) -> list[Sample]:
    """The lmms-lab/POPE layout: question_id, question, answer, image_source, image, category."""
    ds = load_hf_dataset(name, split="test", option="pope.data")
    samples = []
    for i, row in enumerate(ds):
        where = f"{name}[{i}]"
        image = row.get("image") if images is None else resolve_image(f"{row['image_source']}.jpg", images)
        if image is None:
            raise TaskError(f"{where}: no embedded image; pass --task-arg pope.images=DIR")
        samples.append(
            Sample(
                id=f"{row['category']}-{row['question_id']}",
                prompt=_with_suffix(row["question"], suffix),
                images=[image],
                target=_check_label(row["answer"], where),
                group=str(row["category"]),
                metadata={"question_id": row["question_id"], "image": row.get("image_source"), "question": row["question"]},
            )
        )
    return samples


@dataclass
class PopeOptions(TaskOptions):
    data: str = opt(DEFAULT_DATA, "official coco_pope_<split>.json file(s) or folder, merged JSONL with category, or hf:NAME")
    images: str | None = opt(None, "folder with the images (e.g. COCO val2014); default: embedded in the dataset")
    labels: str | None = opt(None, "folder of official question files giving labels to a merged JSONL without them")
    prompt_suffix: str = opt(SHORT_ANSWER, "text appended to each question (LLaVA's short-answer instruction; \\n for a newline)")


def load_samples(options: PopeOptions) -> list[Sample]:
    """Dispatch on `data`: hf:NAME, a folder of *_pope_*.json files, comma-separated files, or one file."""
    data, images = options.data, options.images
    suffix = options.prompt_suffix.replace("\\n", "\n")
    if data.startswith(HF_PREFIX):
        return load_hf(data[len(HF_PREFIX):], images, suffix)
    paths: list[Path] = []
    for part in data.split(","):
        p = Path(part)
        if p.is_dir():
            found = sorted(p.glob("*_pope_*.json"))
            if not found:
                raise TaskError(f"{p}: no *_pope_<split>.json question files in this folder")
            paths.extend(found)
        else:
            paths.append(p)
    samples: list[Sample] = []
    seen_groups: dict[str, Path] = {}
    for p in paths:
        if not p.is_file():
            raise TaskError(f"{p}: POPE question file not found")
        first = next(iter_jsonl(p), (0, {}))[1]
        part_samples = (
            load_merged(p, images, options.labels, suffix)
            if "category" in first
            else load_question_file(p, images, suffix)
        )
        for g in {s.group for s in part_samples}:
            if g in seen_groups:
                raise TaskError(f"{p}: split {g!r} already loaded from {seen_groups[g]}; evaluate them separately")
            seen_groups[g] = p
        samples.extend(part_samples)
    return samples
