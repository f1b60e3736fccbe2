"""VLMEvalKit's prediction files (`{model}_{dataset}.xlsx`, `.tsv` or `.json`): the dataset's columns minus the image,
plus `prediction` (and `extracted`/`score` in the `_auxmatch` file its evaluation writes). Rows are joined to the
questions the user passes (`--data`) by what the row says about its question — split or category, image, question
text, VLMEvalKit's own set/figure/question ids — never by VLMEvalKit's row `index`, whose numbering is its own."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..scoring import AnswerMatch
from ..task import VlmevalkitDataset
from ..types import Sample
from .join import KeyJoin, covered

#: file endings VLMEvalKit writes predictions in (PRED_FORMAT), plus the csv its evaluation writes
SUFFIXES = (".xlsx", ".tsv", ".json", ".csv")
_PUNCTUATION = ';/[]"{}()=+\\_->@`,?!<'
_THOUSANDS = re.compile(r"(\d)(,)(\d)")
_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")
#: how many periods VLMEvalKit's punctuation step removes at most: it passes re.UNICODE (32) where `count` goes
_PERIOD_COUNT = int(re.UNICODE)


_SPACES = re.compile(r"\s+")
_ANSWER_HINT = re.compile(r"\s*please answer yes or no\.?$")
_DIGITS = re.compile(r"\d+")


def question_key(text: str) -> str:
    """A question's text for joining files of two tools: case and spacing ignored, a trailing "Please answer yes or
    no." ignored (MME's questions carry it; copies of a dataset differ on it)."""
    return _ANSWER_HINT.sub("", _SPACES.sub(" ", str(text)).strip().lower())


def file_key(name: str) -> str:
    """An image's file name without folders (tools keep images under different roots)."""
    return str(name).replace("\\", "/").rsplit("/", 1)[-1]


def image_number(name: str) -> int | None:
    """The number in an image's name (COCO's COCO_val2014_000000310196.jpg → 310196), for tools naming images differently."""
    found = _DIGITS.findall(file_key(name).rsplit(".", 1)[0])
    return int(found[-1]) if found else None


def first_column(row: dict[str, str], names: tuple[str, ...]) -> str:
    """The first of `names` the row fills in, else TaskError naming them."""
    for name in names:
        if row.get(name, "").strip():
            return row[name].strip()
    raise TaskError(f"none of the columns {', '.join(names)} is filled in")


def vlmevalkit_punctuation(text: str) -> str:
    """VLMEvalKit's `process_punctuation`: a mark is deleted when it touches a space anywhere in the text (or the text
    has a digit,digit), else it becomes a space; then periods not beside a digit are deleted, at most 32 of them."""
    thousands = _THOUSANDS.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        out = out.replace(mark, "" if thousands or f"{mark} " in text or f" {mark}" in text else " ")
    return _PERIOD.sub("", out, count=_PERIOD_COUNT)


def yorn_extraction(prediction: str) -> str:
    """VLMEvalKit's `YOrN_Extraction` (its exact-matching reading of yes/no answers): Yes when the word yes is among the
    words and no is not, No the other way round, else Unknown."""
    words = vlmevalkit_punctuation(prediction.lower()).split()
    if ("yes" in words) != ("no" in words):
        return "Yes" if "yes" in words else "No"
    return "Unknown"


def _frame_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    import zipfile

    import pandas as pd

    kind = path.suffix.lower()
    unreadable: tuple[type[Exception], ...] = (ValueError, OSError, KeyError, zipfile.BadZipFile, pd.errors.ParserError)
    try:
        if kind == ".xlsx":
            try:
                import openpyxl  # noqa: F401 - pandas' xlsx reader
            except ImportError:
                raise TaskError(f"{path}: reading .xlsx needs openpyxl: pip install 'mmhallu-eval[vlmevalkit]'") from None
            from openpyxl.utils.exceptions import InvalidFileException

            unreadable += (InvalidFileException,)
            frame = pd.read_excel(path, dtype=str, keep_default_na=False, na_filter=False, engine="openpyxl")
        else:
            frame = pd.read_csv(path, sep="\t" if kind == ".tsv" else ",", dtype=str, keep_default_na=False, na_filter=False)
    except TaskError:
        raise
    except unreadable as exc:
        raise TaskError(f"{path}: not a readable {kind[1:]} table ({type(exc).__name__}: {str(exc)[:200]})") from None
    columns = [str(c) for c in frame.columns]
    return columns, [dict(zip(columns, values)) for values in frame.itertuples(index=False, name=None)]


def _json_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """VLMEvalKit's json predictions: a list of records (`DataFrame.to_dict('records')`), or a columns object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: not JSON ({exc})") from None
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        n = len(next(iter(data.values())))
        data = [{k: v[i] for k, v in data.items()} for i in range(n)] if all(len(v) == n for v in data.values()) else None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise TaskError(f"{path}: expected VLMEvalKit's JSON predictions: a list of records with 'index' and 'prediction'")
    columns = list(dict.fromkeys(k for r in data for k in r))
    # a record without a key the others have is an empty cell, as in the xlsx and tsv forms of the same table
    return columns, [{k: "" if (v := r.get(k)) is None else v if isinstance(v, str) else json.dumps(v) for k in columns} for r in data]


def read_table(path: Path) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """(columns, [(where, row)]) of a VLMEvalKit file, every cell as its text (no NA guessing: an answer "None" stays
    "None"); `where` names the spreadsheet row (the header is row 1) or the JSON record."""
    if path.suffix.lower() not in SUFFIXES:
        raise TaskError(f"{path}: VLMEvalKit writes predictions as .xlsx, .tsv or .json; this file is none of them")
    if path.suffix.lower() == ".json":
        columns, rows = _json_rows(path)
        return columns, [(f"{path}: record {i}", r) for i, r in enumerate(rows)]
    columns, rows = _frame_rows(path)
    return columns, [(f"{path}: row {i + 2}", r) for i, r in enumerate(rows)]


#: what VLMEvalKit's evaluation appends to a predictions file's name for the files it writes beside it
EVALUATION_SUFFIXES = ("_auxmatch", "_score", "_acc")


def dataset_of(path: Path, known: tuple[VlmevalkitDataset, ...]) -> VlmevalkitDataset | None:
    """The dataset a file belongs to, from VLMEvalKit's file names `{model}_{dataset}[_auxmatch|_score|_acc].{ext}`."""
    stem = next((path.stem.removesuffix(s) for s in EVALUATION_SUFFIXES if path.stem.endswith(s)), path.stem)
    return next((d for d in sorted(known, key=lambda d: -len(d.name)) if stem == d.name or stem.endswith("_" + d.name)), None)


def _dataset(path: Path, known: tuple[VlmevalkitDataset, ...], task: str) -> VlmevalkitDataset:
    if not known:
        raise TaskError(f"{path}: `mmhallu score {task}` reads no VLMEvalKit predictions (no VLMEvalKit dataset maps to it)")
    found = dataset_of(path, known)
    if found is None:
        from ..registry import get_task, task_names

        for other in task_names():
            theirs = dataset_of(path, get_task(other).capabilities.vlmevalkit) if other != task else None
            if theirs is not None:
                raise TaskError(f"{path}: a VLMEvalKit {theirs.name} file (by its name); score it with `mmhallu score {other}`")
    if found is None and len(known) == 1:
        found = known[0]
    if found is None:
        names = ", ".join(d.name for d in known)
        raise TaskError(f"{path}: cannot tell the VLMEvalKit dataset from the file name; keep VLMEvalKit's name MODEL_DATASET.xlsx ({names})")
    return found


def peer_label(row: dict[str, str]) -> str:
    """VLMEvalKit's reading of a row: its `extracted` column where its evaluation wrote one, else its exact matching."""
    extracted = row.get("extracted", "")
    return extracted if extracted in ("Yes", "No", "Unknown") else yorn_extraction(row.get("prediction", ""))


def _rows(path: Path, spec: VlmevalkitDataset) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    columns, rows = read_table(path)
    needed = [c for c in ("index", "prediction", *spec.columns) if c not in columns]
    if needed:
        raise TaskError(f"{path}: no {', '.join(repr(c) for c in needed)} column (it has {', '.join(columns) or 'none'}); score the predictions file "
                        f"VLMEvalKit wrote for {spec.name} ({{model}}_{spec.name}.xlsx)")
    if not rows:
        raise TaskError(f"{path}: no rows")
    seen: dict[str, str] = {}
    for where, row in rows:
        index = row["index"]
        if index in seen:
            raise TaskError(f"{where}: index {index} again (first on {seen[index]}): two runs concatenated? score each file on its own")
        seen[index] = where.rpartition(": ")[2]
    return columns, rows


def read_vlmevalkit(path: Path, load: Callable[[], list[Sample]], known: tuple[VlmevalkitDataset, ...], task: str
                    ) -> tuple[list[Sample], AnswerMatch, dict[str, Any], VlmevalkitDataset]:
    """(the samples VLMEvalKit's dataset holds, their answers, VLMEvalKit's parsed label per sample id, the dataset).
    `load` gives the questions of --data; a file without the columns a join needs is scored on the questions it states
    itself, where the dataset allows that (`VlmevalkitDataset.from_rows`)."""
    spec = _dataset(path, known, task)
    columns, rows = _rows(path, spec)
    match, labels = AnswerMatch(), {}
    if spec.from_rows is not None and spec.join_columns and not set(spec.join_columns) & set(columns):
        samples = []
        for where, row in rows:
            try:
                own = spec.from_rows(row)
            except TaskError as exc:
                raise TaskError(f"{where} (index {row['index']}): {exc}") from None
            for sample in own:
                samples.append(sample)
                if match.offer(sample.id, row["prediction"], f"index {row['index']}") and spec.label is not None:
                    labels[sample.id] = spec.label(peer_label(row))
        match.notes.append(f"no {' / '.join(spec.join_columns)} column to match the rows to --data: the {len(samples)} questions are scored as the "
                           "file states them (its answer and category columns), not checked against the benchmark's files")
        return samples, match.finish(samples), labels, spec
    held = covered(load(), spec.covers, spec.covers_note, f"VLMEvalKit's {spec.name}", match)
    join = KeyJoin(held, spec.key, match)
    for where, row in rows:
        index = row["index"]
        try:
            keys = spec.row_keys(row)
        except TaskError as exc:
            raise TaskError(f"{where} (index {index}): {exc}") from None
        for key in keys:
            sample = join.take(key, f"index {index}", f"{where} (index {index})")
            if sample is not None and match.offer(sample.id, row["prediction"], f"index {index}") and spec.label is not None:
                labels[sample.id] = spec.label(peer_label(row))
    join.require_any(path, "rows", "VLMEvalKit", spec.name)
    return held, match.finish(held), labels, spec
