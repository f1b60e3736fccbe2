"""Adaptive bad-case sampling (MLLM-DataEngine): set the mix of pair types from where a base run fails. Which result
slices speak for which pair type is declared by the tasks (`Capabilities.mix_probes`), not known here."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import TaskError
from ..files import read_json
from ..registry import get_task, task_names
from .strategies.common import PAIR_TYPES

DEFAULT_MIX = {t: 1.0 for t in PAIR_TYPES}
FLOOR = 0.2


def _metric(result: dict[str, Any], group: str | None, metric: str) -> float | None:
    groups = result.get("groups")
    source = result.get("metrics") if group is None else groups.get(group) if isinstance(groups, dict) else None
    value = source.get(metric) if isinstance(source, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def mix_from_run(run_dir: str | Path) -> tuple[dict[str, float], dict[str, Any]]:
    """Weights ∝ error of the matching evaluation slices (floor 0.2 so no type vanishes), with the evidence used:
    error = 1 − the mean of a type's accuracies, plus any positive gap a probe declares against its baseline."""
    run = Path(run_dir)
    known = set(task_names())
    evidence: dict[str, dict[str, float]] = {k: {} for k in DEFAULT_MIX}
    gaps: dict[str, float] = {}
    results = sorted(run.glob("*/result.json"))
    if not results:
        raise TaskError(f"{run}: {'folder not found' if not run.is_dir() else 'no <task>/result.json inside'}; give a run folder written by `mmhallu run`")
    for path in results:
        result = read_json(path)
        if not isinstance(result, dict):
            raise TaskError(f"{path}: not a mmhallu result.json (expected a JSON object)")
        task = result.get("task", path.parent.name)
        if task not in known:
            continue
        for probe in get_task(task).capabilities.mix_probes:
            if probe.pair_type not in evidence:
                continue
            value = _metric(result, probe.group, probe.metric)
            if value is None:
                continue
            evidence[probe.pair_type][f"{task}/{probe.group}/{probe.metric}"] = value
            base = _metric(result, probe.baseline, probe.metric) if probe.baseline else None
            if base is not None:
                key = f"{task} {probe.baseline}−{probe.group} {probe.metric} gap"
                evidence[probe.pair_type][key] = base - value
                gaps[probe.pair_type] = gaps.get(probe.pair_type, 0.0) + max(base - value, 0.0)
    weights = {}
    for ptype in DEFAULT_MIX:
        accs = [v for k, v in evidence[ptype].items() if not k.endswith(" gap")]
        error = 1 - sum(accs) / len(accs) if accs else 0.5
        weights[ptype] = max(FLOOR, error + gaps.get(ptype, 0.0))
    total = sum(weights.values())
    return {k: round(v / total, 4) for k, v in weights.items()}, {"run": str(run), "evidence": evidence}


def probing_tasks() -> list[str]:
    """The registered tasks whose results speak for a pair type (those `mix_from_run` reads)."""
    return [name for name in task_names() if get_task(name).capabilities.mix_probes]
