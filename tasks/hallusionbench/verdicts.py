"""HallusionBench's judge: the two official prompts (stored verbatim beside this file), the rules that turn a reply
into a verdict, and the other sources of verdicts — saved raw replies, or the official script's own cache files."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmhallu_eval import TaskError, read_json

from .loaders import key_of

HERE = Path(__file__).parent
CORRECTNESS_PROMPT = (HERE / "judge_correctness.txt").read_text(encoding="utf-8")
SAME_PROMPT = (HERE / "judge_same.txt").read_text(encoding="utf-8")
#: verdicts as the script writes them: correctness "0" incorrect, "1" correct, "2" unclear; same "1" / "0"
INCORRECT, CORRECT, UNCLEAR = "0", "1", "2"
CACHE_FILES = ("hallusion_output_vd_model.json", "hallusion_output_vs_model.json")
#: the script's field for the correctness verdict in its cache files
CORRECTNESS_ENTRY = "gpt4v_output_gpt_check"


def fill(template: str, **fields: str) -> str:
    """The template with each `{field}` replaced once, in order, as the script concatenates the texts (braces inside the
    texts stay as they are)."""
    out, rest = [], template
    for name, value in fields.items():
        head, rest = rest.split("{" + name + "}", 1)
        out += [head, value]
    return "".join(out) + rest


def correctness_prompt(row: dict[str, Any], prediction: str) -> str:
    return fill(CORRECTNESS_PROMPT, question=row["question"], gt_answer_details=row["gt_answer_details"], prediction=prediction)


def same_prompt(prediction: str, original: str) -> str:
    return fill(SAME_PROMPT, response1=prediction, response2=original)


def correctness_verdict(reply: str) -> str:
    """'incorrect' anywhere (lower-cased) first — it contains 'correct' — then 'correct', else unclear."""
    low = reply.lower()
    if "incorrect" in low:
        return INCORRECT
    return CORRECT if "correct" in low else UNCLEAR


def same_verdict(reply: str) -> str:
    """'same' anywhere (so "not the same" is same); anything else, 'different' or not, is different."""
    return "1" if "same" in reply.lower() else "0"


def saved_replies(path: str) -> dict[str, dict[str, str]]:
    """`{key: {"correctness_reply": str, "same_reply": str}}`, the raw replies to the two prompts."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise TaskError(f"{path}: expected {{key: {{\"correctness_reply\": str, \"same_reply\": str}}}}")
    for key, value in data.items():
        if not isinstance(value, dict) or not isinstance(value.get("correctness_reply"), str):
            raise TaskError(f"{path}: {key}: needs a text 'correctness_reply' (and 'same_reply' for figures other than 0)")
    return data


def official_cache(folder: str) -> dict[str, dict[str, str]]:
    """The verdicts in the official script's cache files (its records with `gpt4v_output_gpt_check` and `same`)."""
    out: dict[str, dict[str, str]] = {}
    for name in CACHE_FILES:
        path = Path(folder) / name
        if not path.is_file():
            raise TaskError(f"{path}: not found; --official-cache takes the folder where evaluation.py wrote {' and '.join(CACHE_FILES)}")
        rows = read_json(path)
        if not isinstance(rows, list):
            raise TaskError(f"{path}: expected the list of judged records evaluation.py writes")
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or CORRECTNESS_ENTRY not in row:
                raise TaskError(f"{path}: record {i} has no {CORRECTNESS_ENTRY!r} verdict (the script stopped before judging it?)")
            out[key_of(row, f"{path}: record {i}")] = {"correctness": str(row[CORRECTNESS_ENTRY]), "same": str(row.get("same", ""))}
    return out
