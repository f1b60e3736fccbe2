"""Reading what other evaluation tools wrote — their per-item logs and their reported numbers — so their answers can be
scored by the official rules and their numbers set beside the official ones."""
from __future__ import annotations

from pathlib import Path

from ..errors import TaskError
from ..files import iter_jsonl
from ..task import LmmsEvalTask
from .lmms_eval import lmms_eval_task_of, read_lmms_eval_log
from .peer import PeerNumbers, is_vlmevalkit_scores, peer_reported, read_peer_results, read_vlmevalkit_scores
from .vlmevalkit import dataset_of, read_vlmevalkit, yorn_extraction

__all__ = ["FORMATS", "LmmsEvalTask", "PeerNumbers", "dataset_of", "detect_format", "is_vlmevalkit_scores", "lmms_eval_task_of", "peer_reported", "read_lmms_eval_log",
           "read_peer_results", "read_vlmevalkit", "read_vlmevalkit_scores", "yorn_extraction"]

#: `mmhallu score --format`: official = the task's own answers format (LLaVA's JSONL for POPE-style tasks)
FORMATS = ("auto", "official", "llava", "lmms-eval", "vlmevalkit")


def _vlmevalkit_json(path: Path) -> bool:
    """A JSON list of records with index and prediction (VLMEvalKit's PRED_FORMAT=json)."""
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"[") and b'"prediction"' in head and b'"index"' in head


def detect_format(path: Path) -> tuple[str, str]:
    """(format, why) for `--format auto`, from the file's name and first record."""
    if path.suffix.lower() in (".xlsx", ".tsv", ".csv"):
        return "vlmevalkit", f"a {path.suffix.lower()} table (VLMEvalKit's predictions)"
    if path.suffix.lower() == ".json" and path.is_file() and _vlmevalkit_json(path):
        return "vlmevalkit", "a JSON list of records with index and prediction (VLMEvalKit's predictions)"
    if path.suffix.lower() == ".jsonl" or lmms_eval_task_of(path):
        try:
            first = next(iter_jsonl(path), (0, {}))[1]
        except TaskError:
            first = {}
        if isinstance(first, dict) and "doc_id" in first and ("filtered_resps" in first or "resps" in first):
            return "lmms-eval", "lines have doc_id and filtered_resps (lmms-eval --log_samples)"
    return "official", "the task's own answers format"
