"""Build run folders from records, the way `mmhallu run` writes them, for report tests."""
from __future__ import annotations

import json
from pathlib import Path

from mmhallu_eval import get_task
from mmhallu_eval.rundir import RunDir
from mmhallu_eval.scoring import build_result, score_texts


def write_run(root: Path, task: str, samples, texts: dict[str, str], parser: str | None = None, model: str = "model",
              options: dict | None = None) -> Path:
    spec = get_task(task)
    chosen = spec.parser(parser)
    records = score_texts(spec, chosen, samples, texts, spec.parse_options(options or {}))
    run = RunDir(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"schema_version": 1, "model": {"model": model, "backend": "test"}, "versions": {}, "started": "2026-01-01T00:00:00+00:00"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    with run.samples_writer(task) as out:
        for record in records:
            out.write(record)
        out.commit()
    run.write_result(task, build_result(spec, chosen, records))
    return root
