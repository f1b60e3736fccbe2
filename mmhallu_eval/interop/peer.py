"""A peer tool's reported numbers (lmms-eval's `*_results.json`) set beside the official ones: `peer_reported` in
result.json, with the delta per metric and the items whose parsed label differs between the two tools."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..files import read_json

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
    metrics = {}
    for key, value in results[task].items():
        name, _, filt = key.partition(",")
        if filt == "none" and isinstance(value, (int, float)) and not isinstance(value, bool) and "_stderr" not in name:
            metrics[name] = float(value)
    return PeerNumbers("lmms-eval", data.get("lmms_eval_version"), str(path), task, metrics)


def peer_reported(peer: PeerNumbers, names: dict[str, str], ours: dict[str, Any], labels: dict[str, Any],
                  parsed: dict[str, Any], responses: dict[str, str]) -> dict[str, Any]:
    """The comparison written into result.json: per peer metric its value, the official value of the metric with the
    same meaning, and official − peer; then the items both tools read differently (when the peer's log was read)."""
    metrics = {}
    for peer_name, value in peer.metrics.items():
        mine = names.get(peer_name)
        official = ours.get(mine) if mine else None
        metrics[peer_name] = {"metric": mine, "peer": value, "official": official,
                              "delta": official - value if isinstance(official, (int, float)) else None}
    differ = [sid for sid, label in labels.items() if sid in parsed and label != parsed[sid]]
    return {
        "tool": peer.tool, "version": peer.version, "file": peer.file, "task": peer.task, "metrics": metrics,
        "differing_items": {"compared": len([s for s in labels if s in parsed]), "count": len(differ),
                            "first": [{"id": sid, "peer": labels[sid], "official": parsed[sid], "response": responses.get(sid)} for sid in differ[:LISTED]]}
        if labels else None,
    }
