"""Adaptive bad-case sampling (MLLM-DataEngine): set the mix of pair types from where a base run fails."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import read_json

DEFAULT_MIX = {"obj": 1.0, "attr": 1.0, "rel": 1.0, "wh": 1.0}
FLOOR = 0.2


def _metric(run: Path, task: str, group: str | None, metric: str) -> float | None:
    path = run / task / "result.json"
    if not path.exists():
        return None
    result = read_json(path)
    source = result["metrics"] if group is None else result.get("groups", {}).get(group, {})
    value = source.get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def mix_from_run(run_dir: str | Path) -> tuple[dict[str, float], dict[str, Any]]:
    """Weights ∝ error of the matching evaluation slices (floor 0.2 so no type vanishes), with the evidence used.

    obj  ← POPE adversarial accuracy (and its gap to random), FINER multi_obj paired accuracy
    attr ← FINER multi_attr paired accuracy, MME color acc
    rel  ← FINER multi_rel paired accuracy, MME position acc
    wh   ← FINER wh paired accuracy
    """
    run = Path(run_dir)
    finer = next((t for t in ("finer_comprecap", "finer_docci") if (run / t / "result.json").exists()), "finer_comprecap")
    evidence: dict[str, dict[str, float]] = {k: {} for k in DEFAULT_MIX}
    probes = {
        "obj": [("pope", "adversarial", "accuracy"), (finer, "multi_obj", "paired_accuracy")],
        "attr": [(finer, "multi_attr", "paired_accuracy"), ("mme", "color", "acc")],
        "rel": [(finer, "multi_rel", "paired_accuracy"), ("mme", "position", "acc")],
        "wh": [(finer, "wh", "paired_accuracy")],
    }
    for ptype, items in probes.items():
        for task, group, metric in items:
            v = _metric(run, task, group, metric)
            if v is not None:
                evidence[ptype][f"{task}/{group}/{metric}"] = v
    gap_adv = _metric(run, "pope", "random", "accuracy")
    adv = _metric(run, "pope", "adversarial", "accuracy")
    if gap_adv is not None and adv is not None:
        evidence["obj"]["pope random−adversarial accuracy gap"] = gap_adv - adv
    weights = {}
    for ptype in DEFAULT_MIX:
        accs = [v for k, v in evidence[ptype].items() if "gap" not in k]
        error = 1 - sum(accs) / len(accs) if accs else 0.5
        gap = evidence[ptype].get("pope random−adversarial accuracy gap", 0.0)
        weights[ptype] = max(FLOOR, error + max(gap, 0.0))
    total = sum(weights.values())
    return {k: round(v / total, 4) for k, v in weights.items()}, {"run": str(run), "evidence": evidence}
