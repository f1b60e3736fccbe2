"""HallusionBench.json (the 1,129 questions) and the official result format (its rows plus `model_prediction`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmhallu_eval import pinned_file, JudgeOptions, Sample, TaskError, opt, read_json, resolve_image

COMMIT = "744007c232c292942c7f80eb61edb2465482da31"
URL = f"https://raw.githubusercontent.com/tianyi-lab/HallusionBench/{COMMIT}/HallusionBench.json"
SHA256 = "ca6e0fb677dd56e5fb0e2700d06c58d01f8a6ae66e0f1773b2ac48c0a095d051"
FIELDS = ("category", "subcategory", "visual_input", "set_id", "figure_id", "question_id", "question", "gt_answer_details", "gt_answer")
CATEGORIES = ("VD", "VS")


@dataclass
class HallusionOptions(JudgeOptions):
    data: str = opt("github", "HallusionBench.json, or 'github': the published file at a pinned commit, downloaded once")
    images: str | None = opt(None, "folder holding the VD/ and VS/ figure folders (hallusion_bench.zip unpacked)")
    prompt_suffix: str = opt("", "text appended to each question (the benchmark asks the question as it is; \\n for a newline)")
    judge_replies: str | None = opt(None, 'saved raw judge replies: {key: {"correctness_reply": str, "same_reply": str}}, key '
                                          "category_subcategory_setid_figureid_questionid")
    official_cache: str | None = opt(None, "folder with the official script's hallusion_output_vd_model.json and _vs_model.json: "
                                           "their verdicts are used as they are")


def key_of(row: dict[str, Any], where: str) -> str:
    """category_subcategory_setid_figureid_questionid, the id of one question."""
    missing = [f for f in ("category", "subcategory", "set_id", "figure_id", "question_id") if f not in row]
    if missing:
        raise TaskError(f"{where}: missing field(s) {', '.join(missing)}")
    return "_".join(str(row[f]) for f in ("category", "subcategory", "set_id", "figure_id", "question_id"))


def pair_of(row: dict[str, Any]) -> str:
    """category_subcategory_setid_questionid: the same question on every figure of a set."""
    return "_".join(str(row[f]) for f in ("category", "subcategory", "set_id", "question_id"))


def set_of(row: dict[str, Any]) -> str:
    """category_subcategory_setid: every pair and figure statistic stays within one set (the resampling unit)."""
    return "_".join(str(row[f]) for f in ("category", "subcategory", "set_id"))


def check_row(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise TaskError(f"{where}: not an object of HallusionBench.json")
    key = key_of(row, where)
    missing = [f for f in FIELDS if f not in row]
    if missing:
        hint = " (the repository's HallusionBench_result_sample.json predates gt_answer; score the current HallusionBench.json rows)" if "gt_answer" in missing else ""
        raise TaskError(f"{where} ({key}): missing field(s) {', '.join(missing)}{hint}")
    if str(row["gt_answer"]) not in ("0", "1") or str(row["category"]) not in CATEGORIES or str(row["visual_input"]) not in ("0", "1", "2"):
        raise TaskError(f"{where} ({key}): gt_answer must be '0'/'1', category VD/VS, visual_input '0'/'1'/'2'")
    if not str(row["figure_id"]).isdecimal():
        raise TaskError(f"{where} ({key}): figure_id must be a figure number ('0' for the original figure), got {row['figure_id']!r}")
    for f in ("question", "gt_answer_details"):
        if not isinstance(row[f], str):
            raise TaskError(f"{where} ({key}): {f} must be text")
    return row


def data_file(data: str) -> Path:
    return pinned_file(URL, SHA256, f"hallusionbench/{COMMIT[:7]}/HallusionBench.json", "hallusionbench.data") if data == "github" else Path(data)


def sample_of(row: dict[str, Any], images: str | None, suffix: str) -> Sample:
    filename = row.get("filename")
    return Sample(
        id=key_of(row, "row"), prompt=row["question"] + suffix,
        images=[resolve_image(str(filename).removeprefix("./"), images)] if filename and str(row["visual_input"]) != "0" else [],
        target=str(row["gt_answer"]), group=str(row["category"]),
        metadata={f: str(row[f]) if f != "question" and f != "gt_answer_details" else row[f] for f in FIELDS} | {"filename": filename},
    )


def load_rows(path: Path) -> list[dict[str, Any]]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise TaskError(f"{path}: expected a JSON list of HallusionBench rows")
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        key = key_of(check_row(row, f"{path}: row {i}"), f"{path}: row {i}")
        if key in seen:
            raise TaskError(f"{path}: row {i}: question {key} repeats row {seen[key]}")
        seen[key] = i
    return rows


def load_samples(options: HallusionOptions) -> list[Sample]:
    suffix = options.prompt_suffix.replace("\\n", "\n")
    return [sample_of(row, options.images, suffix) for row in load_rows(data_file(options.data))]
