"""A peer tool's reported numbers (lmms-eval's `*_results.json`, VLMEvalKit's `*_score.csv`/`*_acc.csv`) set beside
the official ones: `peer_reported` in result.json, with the delta per metric and the items whose parsed label differs
between the two tools."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..files import read_json
from ..options import is_number
from ..task import PeerMetric

#: how many differing items result.json lists (all are counted)
LISTED = 50


@dataclass(frozen=True)
class PeerNumbers:
    tool: str
    version: str | None
    file: str
    task: str
    metrics: dict[str, float]


def read_peer_results(path: Path, task: str) -> PeerNumbers:
    """lmms-eval's results file: `results[task]["<metric>,<filter>"]` (the `none` filter)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise TaskError(f"{path}: not an lmms-eval results file (no 'results' object)")
    results = data["results"]
    if task not in results:
        raise TaskError(f"{path}: no results for lmms-eval task {task!r} (it has {', '.join(results) or 'none'})")
    if not isinstance(results[task], dict):
        raise TaskError(f"{path}: results[{task!r}] is not an object of \"<metric>,<filter>\" numbers; not an lmms-eval results file")
    metrics = {}
    for key, value in results[task].items():
        name, _, filt = key.partition(",")
        if filt == "none" and is_number(value) and "_stderr" not in name:
            metrics[name] = float(value)
    if not metrics:
        raise TaskError(f"{path}: results[{task!r}] has no number under a \"<metric>,none\" key; pass the *_results.json lmms-eval wrote")
    return PeerNumbers("lmms-eval", data.get("lmms_eval_version"), str(path), task, metrics)


def is_vlmevalkit_scores(path: Path) -> bool:
    """VLMEvalKit writes its scores as csv (or, with EVAL_FORMAT=json, a JSON list of rows); lmms-eval's results file is
    a JSON object."""
    if path.suffix.lower() != ".json":
        return path.suffix.lower() == ".csv"
    with path.open("rb") as f:
        return f.read(4096).lstrip().startswith(b"[")


def read_vlmevalkit_scores(path: Path, dataset: str) -> PeerNumbers:
    """VLMEvalKit's score file (csv, or json with EVAL_FORMAT=json): a table with a `split` column (POPE,
    HallusionBench: cells named "split/column") or one row (MME, AMBER: cells named by column)."""
    import pandas as pd

    try:
        # cells as text, made numbers by Python: each the float nearest what the file writes (pandas 2's own parser can be
        # a unit in the last place off)
        frame = pd.DataFrame(read_json(path)) if path.suffix.lower() == ".json" else pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise TaskError(f"{path}: not a VLMEvalKit score file ({type(exc).__name__}: {str(exc)[:200]})") from None
    if frame.empty:
        raise TaskError(f"{path}: no rows; pass the *_score.csv VLMEvalKit's evaluation wrote")
    metrics: dict[str, float] = {}
    for i, row in enumerate(frame.to_dict("records")):
        if "split" not in row and i:
            raise TaskError(f"{path}: {len(frame)} rows and no 'split' column; not a VLMEvalKit score file of {dataset}")
        for column, value in row.items():
            number = _number(value)
            if column != "split" and number is not None:
                metrics[f"{row['split']}/{column}" if "split" in row else str(column)] = number
    if not metrics:
        raise TaskError(f"{path}: no numbers; pass the *_score.csv VLMEvalKit's evaluation wrote")
    return PeerNumbers("VLMEvalKit", None, str(path), dataset, metrics)


def _number(value: Any) -> float | None:
    """A cell's finite number (a JSON number, or text that reads as one), else None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return float(value) if is_number(value) else None


def _at(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = result
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def peer_reported(peer: PeerNumbers, names: Mapping[str, PeerMetric], result: dict[str, Any], labels: dict[str, Any],
                  parsed: dict[str, Any], responses: dict[str, str]) -> dict[str, Any]:
    """The comparison written into result.json: per peer metric its value, the official value of the metric with the
    same meaning (on the peer's scale), and official − peer; then the items both tools read differently (when the
    peer's per-item reading is known)."""
    metrics = {}
    for peer_name, value in peer.metrics.items():
        mine = names.get(peer_name)
        official = _at(result, mine.path) if mine else None
        official = official * mine.scale if mine and isinstance(official, (int, float)) and not isinstance(official, bool) else None
        metrics[peer_name] = {"metric": ".".join(mine.path) if mine else None, "peer": value, "official": official,
                              "delta": official - value if official is not None else None}
    differ = [sid for sid, label in labels.items() if sid in parsed and label != parsed[sid]]
    return {
        "tool": peer.tool, "version": peer.version, "file": peer.file, "task": peer.task, "metrics": metrics,
        "differing_items": {"compared": len([s for s in labels if s in parsed]), "count": len(differ),
                            "first": [{"id": sid, "peer": labels[sid], "official": parsed[sid], "response": responses.get(sid)} for sid in differ[:LISTED]]}
        if labels else None,
    }
