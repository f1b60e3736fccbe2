"""What a task's numbers depend on besides the model: how answers were scored (the protocol) and how they were made
(the settings). compare refuses runs scored differently and notes runs made differently; a leaderboard notes both."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: result.json fields that define the scoring: numbers under two of them measure different things
PROTOCOL = ("task_version", "parser", "parser_version")
#: result.json fields that record how the answers were made (`sampling` only where a server refused the requested
#: temperature); a delta between runs that differ in them mixes the model with the settings
SETTINGS = ("generation", "sampling", "reasoning")


def comparable_settings(results: list[dict[str, Any]]) -> tuple[str, ...]:
    """The settings every one of `results` records: the decoding only if all came from `mmhallu run` (a rescored file
    records none, only how it read reasoning)."""
    runs = all("generation" in r for r in results)
    return tuple(key for key in SETTINGS if all(key in r for r in results) or (key == "sampling" and runs))


def differing(results: Mapping[str, dict[str, Any]], keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per key in which the results (by run label) do not all agree, each run's value."""
    out = {}
    for key in keys:
        values = {label: r.get(key) for label, r in results.items()}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            out[key] = values
    return out
