"""lmms-eval's `amber_g` task: the 1,004 generative queries in AMBER's order; a log line's `target` is the image's
truth objects, checked against the query it lands on."""
from __future__ import annotations

import json
from typing import Any

from mmhallu_eval import LmmsEvalTask, PeerMetric, Sample


def truth_check(sample: Sample, row: dict[str, Any]) -> str | None:
    target = row.get("target")
    if isinstance(target, str):
        try:
            target = json.loads(target)
        except json.JSONDecodeError:
            pass
    if target is not None and target != sample.metadata.get("truth"):
        return f"an image with truth {str(target)[:80]} in the log but {sample.metadata.get('truth')} (query {sample.id}) in --data"
    return None


#: its aggregates: AMBER's generative numbers in percent, from counters that each start at 0.001 per query
METRICS = {f"amber_{name.lower()}": PeerMetric(("metrics", "official_table", "generative", name)) for name in ("CHAIR", "Cover", "Hal", "Cog")}

LMMS_EVAL = (LmmsEvalTask("amber_g", "generative", METRICS, check=truth_check),)
