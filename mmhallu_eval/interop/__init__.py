"""Reading what other evaluation tools wrote — their per-item logs and their reported numbers — so their answers can be
scored by the official rules and their numbers set beside the official ones."""
from __future__ import annotations

from pathlib import Path

from ..errors import TaskError
from ..files import iter_jsonl
from ..task import LmmsEvalTask
from .lmms_eval import lmms_eval_task_of, read_lmms_eval_log
from .peer import PeerNumbers, peer_reported, read_peer_results

__all__ = ["FORMATS", "LmmsEvalTask", "PeerNumbers", "detect_format", "lmms_eval_task_of", "peer_reported", "read_lmms_eval_log",
           "read_peer_results"]

#: `mmhallu score --format`: official = the task's own answers format (LLaVA's JSONL for POPE-style tasks)
FORMATS = ("auto", "official", "llava", "lmms-eval")


def detect_format(path: Path) -> tuple[str, str]:
    """(format, why) for `--format auto`, from the file's name and first record."""
    if path.suffix.lower() in (".xlsx", ".tsv", ".csv"):
        raise TaskError(f"{path}: a spreadsheet of predictions (VLMEvalKit's format) is not read; export the answers as JSON "
                        "lines with question_id and text, or use the tool's per-item log")
    if path.suffix.lower() == ".jsonl" or lmms_eval_task_of(path):
        try:
            first = next(iter_jsonl(path), (0, {}))[1]
        except TaskError:
            first = {}
        if isinstance(first, dict) and "doc_id" in first and ("filtered_resps" in first or "resps" in first):
            return "lmms-eval", "lines have doc_id and filtered_resps (lmms-eval --log_samples)"
    return "official", "the task's own answers format"
