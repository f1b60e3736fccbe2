"""`mmhallu run` scores and writes each group of answers a streaming backend hands back while the engine works on the
rest: the records, their order and result.json are those of scoring every answer at the end."""
import dataclasses
import json
from pathlib import Path

import pytest

from mmhallu_eval.backends.base import Backend
from mmhallu_eval.files import JsonlWriter
from mmhallu_eval.outputs import is_run_layout
from mmhallu_eval.registry import get_task
from mmhallu_eval.runner import RunConfig, run
from mmhallu_eval.scoring import RecordStream, make_records
from mmhallu_eval.types import Response, Sample


def _samples(n: int) -> list[Sample]:
    return [Sample(id=f"s{i}", prompt=f"Is there a cat in the image {i}?", images=[], target="yes" if i % 2 else "no", group="random")
            for i in range(n)]


def _answers(samples: list[Sample]) -> dict[str, Response]:
    return {s.id: Response(id=s.id, text="Yes." if i % 3 else "No, there is not.") for i, s in enumerate(samples)}


def test_records_come_in_sample_order_once_every_earlier_sample_is_answered():
    spec = get_task("pope")
    parser = spec.parser(None)
    samples = _samples(7)
    answers = _answers(samples)
    stream = RecordStream(spec, parser, samples, chunk=3)
    assert list(stream.ready({k: answers[k] for k in ("s1", "s2")})) == []  # s0 not answered yet
    first = list(stream.ready({k: answers[k] for k in ("s0", "s1", "s2", "s4")}))
    assert [r["id"] for r in first] == ["s0", "s1", "s2"]
    second = list(stream.ready({k: answers[k] for k in ("s0", "s1", "s2", "s3", "s4")}))
    assert [r["id"] for r in second] == ["s3", "s4"]
    rest = list(stream.rest(answers))
    assert [r["id"] for r in rest] == ["s5", "s6"]
    assert first + second + rest == make_records(spec, parser, samples, answers)
    assert list(stream.rest(answers)) == []


def test_a_batch_scorer_sees_the_same_batches_as_when_every_answer_is_there():
    """A batch scorer (CHAIR's, a judge's) is called on whole chunks from the start and the remainder last, however
    the answers arrive."""
    pope = get_task("pope")
    batches: list[list[str]] = []

    def score_batch(samples, texts, parser, options):
        batches.append([s.id for s in samples])
        return [pope.score_sample(s, t, parser) for s, t in zip(samples, texts)]

    spec = dataclasses.replace(pope, score_batch=score_batch)
    parser = spec.parser(None)
    samples = _samples(8)
    answers = _answers(samples)
    stream = RecordStream(spec, parser, samples, chunk=3)
    got = list(stream.ready({k: answers[k] for k in ("s0", "s1")}))
    got += stream.ready({k: answers[k] for k in ("s0", "s1", "s2", "s3", "s4")})
    got += stream.ready({k: answers[k] for k in list(answers)[:7]})
    got += stream.rest(answers)
    assert batches == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6", "s7"]]
    assert got == make_records(pope, parser, samples, answers)


def test_a_writer_left_without_commit_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), JsonlWriter(tmp_path / "made" / "a.jsonl") as out:
        out.write({"i": 1})
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []  # the folder it made for the file too
    with JsonlWriter(tmp_path / "b.jsonl") as out:
        out.commit()
    assert (tmp_path / "b.jsonl").read_text() == "" and [p.name for p in tmp_path.iterdir()] == ["b.jsonl"]


class Streaming(Backend):
    """Hands back `size` answers at a time, like vLLM's engine; `watch(n)` runs before the n-th group is handed back."""

    default_batch_size = None

    def __init__(self, watch=None, size: int = 2):
        self.watch = watch or (lambda n: None)
        self.size = size

    def fingerprint(self) -> str:
        return "streaming"

    def generate(self, requests):
        return [resp for group in self.generate_stream(requests) for resp in group]

    def generate_stream(self, requests):
        for n, start in enumerate(range(0, len(requests), self.size)):
            self.watch(n)
            yield [Response(id=r.id, text="Yes, there is." if len(r.id) % 2 else "No.") for r in requests[start : start + self.size]]


def _config(out, pope_fixture, **kw) -> RunConfig:
    return RunConfig(model="streaming", tasks=["pope"], out=out, limit=10, show_progress=False,
                     task_args={"pope": {"data": str(pope_fixture), "images": str(pope_fixture / "images")}}, **kw)


def test_run_writes_each_group_while_the_rest_generates(tmp_path, pope_fixture, monkeypatch):
    """Before the third group is handed back, the first two groups' records are already written (to samples.jsonl's
    temp file); the finished files equal those of a backend that answers everything at once, and no temp file is
    left."""
    task_dir = tmp_path / "run" / "pope"
    rows: list[str] = []
    inner = JsonlWriter.write
    monkeypatch.setattr(JsonlWriter, "write", lambda self, row: (rows.append(row["id"]), inner(self, row))[1])
    written: dict[int, int] = {}

    def watch(n):
        assert len(list(task_dir.glob(".samples.jsonl.*.tmp"))) == 1
        written[n] = len(rows)

    run(_config(tmp_path / "run", pope_fixture), backend=Streaming(watch))
    assert written[0] == 0 and written[1] == 2 and written[2] == 4
    run(_config(tmp_path / "whole", pope_fixture), backend=Streaming(size=1000))
    assert (task_dir / "samples.jsonl").read_text() == (tmp_path / "whole" / "pope" / "samples.jsonl").read_text()
    assert json.loads((task_dir / "result.json").read_text()) == json.loads((tmp_path / "whole" / "pope" / "result.json").read_text())
    assert sorted(p.name for p in task_dir.iterdir()) == ["result.json", "samples.jsonl"]


def test_a_run_stopped_part_way_keeps_its_answers_and_no_partial_samples_file(tmp_path, pope_fixture):
    """Ctrl-C between groups: the answered groups stay in the cache, no samples.jsonl (nor its temp file) is left, and
    the rerun generates only the rest. The temp file a killed run would leave keeps the folder a run folder (for
    --overwrite) and the next run removes it."""
    def stop(n):
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(_config(tmp_path / "run", pope_fixture), backend=Streaming(stop))
    task_dir = tmp_path / "run" / "pope"
    assert not task_dir.exists()  # nor the task's folder, made for the temp file
    task_dir.mkdir()  # what `kill -9` during generation leaves: the temp file in its folder, still a run folder's own
    (task_dir / ".samples.jsonl.k1ll3d.tmp").write_text("what a run killed while writing leaves\n")
    assert is_run_layout(tmp_path / "run") == (True, [])
    run(_config(tmp_path / "run", pope_fixture, resume=True), backend=Streaming())
    stats = json.loads((tmp_path / "run" / "manifest.json").read_text())["tasks"]["pope"]["stats"]
    assert (stats["cached"], stats["generated"]) == (4, 6)
    assert sorted(p.name for p in task_dir.iterdir()) == ["result.json", "samples.jsonl"]  # the killed run's temp file too


def test_the_manifest_names_the_evaluated_data_whether_groups_come_or_every_answer_is_cached(tmp_path, pope_fixture):
    """The data's identity is made while groups come; a rerun that finds every answer cached (no group handed back)
    makes the same one after generation."""
    from mmhallu_eval.registry import get_task
    from mmhallu_eval.runner import data_roots, load_task_samples, samples_hash

    spec = get_task("pope")
    samples = load_task_samples(spec, spec.parse_options({"data": str(pope_fixture), "images": str(pope_fixture / "images")}), 10)
    want = {"n_samples": 10, "samples_hash": samples_hash(samples), "data_roots": data_roots(samples)}
    assert want["data_roots"] == [str((pope_fixture / "images").resolve())]
    groups: list[int] = []
    run(_config(tmp_path / "run", pope_fixture), backend=Streaming(groups.append))
    first = json.loads((tmp_path / "run" / "manifest.json").read_text())["tasks"]["pope"]
    run(_config(tmp_path / "run", pope_fixture), backend=Streaming(groups.append))
    again = json.loads((tmp_path / "run" / "manifest.json").read_text())["tasks"]["pope"]
    assert groups == [0, 1, 2, 3, 4]  # five groups the first time, none the second
    assert again["stats"]["cached"] == 10
    for entry in (first, again):
        assert {k: entry[k] for k in want} == want


def test_the_sample_set_hash_names_the_data_not_its_folder(pope_fixture):
    """The manifest's `samples_hash` is the same for the same files in another folder, and changes with a label."""
    from mmhallu_eval.registry import get_task
    from mmhallu_eval.runner import load_task_samples, samples_hash

    spec = get_task("pope")
    samples = load_task_samples(spec, spec.parse_options({"data": str(pope_fixture), "images": str(pope_fixture / "images")}), 10)
    moved = [dataclasses.replace(s, images=[f"/mnt/elsewhere/{Path(str(im)).name}" for im in s.images]) for s in samples]
    relabelled = [dataclasses.replace(s, target="no" if s.target == "yes" else "yes") if i == 4 else s for i, s in enumerate(samples)]
    renamed = [dataclasses.replace(s, images=["/mnt/elsewhere/other.jpg"]) if i == 2 else s for i, s in enumerate(samples)]
    assert samples_hash(moved) == samples_hash(samples)
    assert len({samples_hash(samples), samples_hash(relabelled), samples_hash(renamed)}) == 3
