"""FINER-CompreCap / FINER-DOCCI rows: the HF datasets (one split per setting) or local CSV/JSONL files."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable

from mmhallu_eval import AnswerMatch, Sample, TaskError, load_hf_dataset, read_json, read_text, resolve_image

SETTINGS = ("multi_obj", "multi_attr", "multi_rel", "wh")
LETTERS = "ABCDE"
REQUIRED = ("qtype", "question", "choice1", "choice2", "choice3", "choice4", "choice5", "gt_index")


def build_prompt(question: str, choices: list[str]) -> str:
    """The official FINER prompt, verbatim."""
    lines = "\n".join(f"({letter}) {choice}" for letter, choice in zip(LETTERS, choices))
    return (
        "Select the best answer for the multiple-choice question.\n\n"
        f"{question}\n\n{lines}\n\n"
        "Please answer with a single capital letter (A, B, C, D, or E):"
    )


def split_qtype(qtype: str, where: str) -> tuple[str, str]:
    """`attr3_pos` → ("attr3", "pos"); anything not ending in _pos/_neg is an error."""
    base, _, polarity = str(qtype).rpartition("_")
    if polarity not in ("pos", "neg") or not base:
        raise TaskError(f"{where}: qtype {qtype!r} must end with _pos or _neg")
    return base, polarity


def row_to_sample(row: dict[str, Any], setting: str, index: int, images: str | None, where: str) -> Sample:
    missing = [f for f in REQUIRED if f not in row or row[f] is None]
    if missing:
        raise TaskError(f"{where}: missing column(s) {', '.join(missing)}")
    image = row.get("image")
    name = row.get("image_filename")
    if image is None or isinstance(image, str):
        name = name or image
        if not name:
            raise TaskError(f"{where}: no image_filename or image column")
        image = resolve_image(str(name), images)
    try:
        gt = int(row["gt_index"])
    except (TypeError, ValueError):
        raise TaskError(f"{where}: gt_index must be an integer 0–4, got {row['gt_index']!r}") from None
    if not 0 <= gt < len(LETTERS):
        raise TaskError(f"{where}: gt_index must be 0–4, got {gt}")
    base, polarity = split_qtype(row["qtype"], where)
    choices = [str(row[f"choice{i}"]) for i in range(1, 6)]
    return Sample(
        id=str(row.get("id", f"{setting}/{index}")),
        prompt=build_prompt(str(row["question"]), choices),
        images=[image],
        target=gt,
        group=setting,
        metadata={
            "setting": setting,
            "image": str(name) if name else f"{setting}/{index}",
            "qtype": str(row["qtype"]),
            "qtype_base": base,
            "polarity": polarity,
            "question": str(row["question"]),
            "choices": choices,
        },
    )


def read_rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line/row number, row) from a .jsonl, .json (list) or .csv file."""
    if path.suffix == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(io.StringIO(read_text(path)), keep_default_na=False, dtype=str)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise TaskError(f"{path}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
        for i, row in enumerate(frame.to_dict(orient="records"), start=2):
            yield i, row
    elif path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            raise TaskError(f"{path}: expected a JSON list of rows")
        yield from enumerate(data, start=1)
    else:
        from mmhallu_eval import iter_jsonl

        yield from iter_jsonl(path)


def local_files(data: Path, what: str = "FINER data") -> list[tuple[str | None, Path]]:
    """(setting or None when rows carry it, file) pairs from a file or a folder of <setting>.<ext> files; `what` names
    the file in errors (the data, or answer rows that carry their questions)."""
    if data.is_file():
        setting = data.stem if data.stem in SETTINGS else None
        return [(setting, data)]
    if not data.is_dir():
        raise TaskError(f"{data}: {what} file or folder not found")
    files = [(p.stem, p) for p in sorted(data.iterdir()) if p.suffix in (".csv", ".jsonl", ".json") and p.stem in SETTINGS]
    if not files:
        raise TaskError(f"{data}: no {{{','.join(SETTINGS)}}}.csv/.jsonl files")
    return files


def load_local(data: Path, settings: tuple[str, ...], images: str | None, with_text: bool = False) -> tuple[list[Sample], AnswerMatch]:
    """The rows as samples; with `with_text`, their `text` column as answers (a repeated id is a duplicate answer)."""
    samples: list[Sample] = []
    match = AnswerMatch()
    seen: set[str] = set()
    for file_setting, path in local_files(data, "answers" if with_text else "FINER data"):
        for i, row in read_rows(path):
            where = f"{path}:{i}"
            setting = file_setting or row.get("setting")
            if setting not in SETTINGS:
                raise TaskError(f"{where}: setting {setting!r} is not one of {', '.join(SETTINGS)} (add a 'setting' column or name the file after it)")
            if setting not in settings:
                continue
            sample = row_to_sample(row, setting, i, images, where)
            if with_text:
                if "text" not in row:
                    raise TaskError(f"{where}: no 'text' column with the model's answer")
                match.offer(sample.id, row["text"], f"{sample.id} ({where})")
            if sample.id not in seen:
                seen.add(sample.id)
                samples.append(sample)
    return samples, match.finish(samples)


def load_hf(name: str, settings: tuple[str, ...], images: str | None, option: str | None = None) -> list[Sample]:
    samples: list[Sample] = []
    for setting in settings:
        ds = load_hf_dataset(name, split=setting, option=option)
        for i, row in enumerate(ds):
            samples.append(row_to_sample(dict(row), setting, i, images, f"{name}[{setting}][{i}]"))
    return samples


def parse_settings(settings: str | None) -> tuple[str, ...]:
    if not settings:
        return SETTINGS
    chosen = tuple(s.strip() for s in settings.split(","))
    for s in chosen:
        if s not in SETTINGS:
            raise TaskError(f"unknown FINER setting {s!r}; choose from {', '.join(SETTINGS)}")
    return chosen
