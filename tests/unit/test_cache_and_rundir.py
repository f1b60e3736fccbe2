import hashlib
import json

import pytest
from PIL import Image

from mmhallu_eval.backends.base import Backend
from mmhallu_eval.cache import ResponseCache, request_key
from mmhallu_eval.data import image_digest
from mmhallu_eval.rundir import redact_argv
from mmhallu_eval.types import GenerationConfig, Request, Response, user_message


def _req(image, text="Is there a cat?", max_new_tokens=8):
    return Request(id="x", messages=user_message(text), images=[image], generation=GenerationConfig(max_new_tokens=max_new_tokens))


@pytest.mark.parametrize("text, n_images, gen", [
    ("Is there a cat?", 1, {}), ("Décris l'image « ici » \u2028 \"quoted\"", 2, {"max_new_tokens": 7, "temperature": 0.7, "top_p": 0.9}),
    ("", 0, {"max_new_tokens": 1}),
])
def test_request_key_hashes_the_sorted_json_of_its_parts(tmp_path, text, n_images, gen):
    """The key is the hash of json.dumps(payload, sort_keys=True, ensure_ascii=False): caches written by earlier
    versions keep hitting."""
    images = []
    for i in range(n_images):
        Image.new("RGB", (4, 4), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
        images.append(str(tmp_path / f"{i}.png"))
    if n_images == 2:
        images.append(str(tmp_path / "absent.png"))
    r = Request(id="q", messages=user_message(text, len(images)), images=images, generation=GenerationConfig(**gen))
    payload = {"model": "fp-é", "messages": r.messages, "images": [image_digest(im) for im in images], "generation": r.generation.to_dict()}
    assert request_key("fp-é", r) == hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def test_request_key_depends_on_model_text_image_content_and_generation(tmp_path):
    a = tmp_path / "a.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(a)
    k = request_key("m1", _req(a))
    assert k == request_key("m1", _req(a))
    assert k != request_key("m2", _req(a))
    assert k != request_key("m1", _req(a, text="Is there a dog?"))
    assert k != request_key("m1", _req(a, max_new_tokens=9))
    b = tmp_path / "b.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(b)
    assert k == request_key("m1", _req(b)), "same pixels under another name is the same request"
    Image.new("RGB", (8, 8), (0, 255, 0)).save(a)
    assert k != request_key("m1", _req(a)), "changed file content must not hit the old entry"


def test_cache_roundtrip_keeps_only_successes(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    assert cache.get_many(["k1", "k2"]) == {}  # a new cache: nothing to look up
    cache.put_many([("k1", Response(id="a", text="Yes", n_output_tokens=2)), ("k2", Response(id="b", error="boom"))])
    got = cache.get_many(["k1", "k2"])
    assert list(got) == ["k1"] and got["k1"].text == "Yes" and got["k1"].cached
    cache.close()
    assert len(ResponseCache(tmp_path / "c.sqlite")) == 1


def test_secrets_are_redacted_from_command_line():
    argv = ["mmhallu", "run", "--judge-api-key", "sk-123", "--api-token=abc", "--judge-api-key-env", "MY_KEY", "--model", "m"]
    assert redact_argv(argv) == ["mmhallu", "run", "--judge-api-key", "***", "--api-token=***", "--judge-api-key-env", "MY_KEY", "--model", "m"]


def test_a_batch_whose_preparation_fails_goes_item_by_item(tmp_path):
    """A backend that prepares batches ahead: a preparation that raises costs only the bad item, in order."""
    from mmhallu_eval.backends.base import Backend
    from mmhallu_eval.backends.cached import generate_cached
    from mmhallu_eval.types import GenerationConfig, Request, Response

    class Ahead(Backend):
        prefetch = True

        def prepare(self, requests):
            if any(r.id == "r3" for r in requests):
                raise ValueError("cannot decode r3")
            return [r.id.upper() for r in requests]

        def generate(self, requests):
            return self.generate_prepared(requests, self.prepare(requests))

        def generate_prepared(self, requests, prepared):
            return [Response(id=r.id, text=p) for r, p in zip(requests, prepared)]

    requests = [Request(id=f"r{i}", messages=[{"role": "user", "content": f"q{i}"}], images=[], generation=GenerationConfig()) for i in range(7)]
    cache = ResponseCache(tmp_path / "cache.sqlite")
    responses, stats = generate_cached(Ahead(), requests, cache, batch_size=2, show_progress=False)
    cache.close()
    assert [responses[r.id].text for r in requests] == ["R0", "R1", "R2", "", "R4", "R5", "R6"]
    assert "cannot decode r3" in responses["r3"].error and stats.failed == 1 and stats.generated == 6


def test_jsonl_scored_while_it_syncs_is_in_place_before_an_error(tmp_path):
    """`meanwhile` runs while the rows go to disk: its result is returned, and when it fails the rows are still
    renamed into place (as when the result was computed after the write) before the error is raised."""
    import json

    import pytest

    from mmhallu_eval.files import atomic_write_jsonl

    seen = []
    out = atomic_write_jsonl(tmp_path / "a.jsonl", [{"i": 1}, {"i": 2}], each=seen.append, meanwhile=lambda: len(seen))
    assert out == 2 and [json.loads(l) for l in (tmp_path / "a.jsonl").read_text().splitlines()] == [{"i": 1}, {"i": 2}]

    def fails():
        raise ValueError("no result")

    with pytest.raises(ValueError, match="no result"):
        atomic_write_jsonl(tmp_path / "b.jsonl", [{"i": 3}], meanwhile=fails)
    assert (tmp_path / "b.jsonl").read_text() == '{"i": 3}\n'
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_each_image_is_read_once_for_its_hash_and_its_decode(tmp_path, monkeypatch):
    """The cache key hashes every image before generation; the decode that follows uses the bytes the hash read, so
    through `generate_cached` each image file is opened once, however many requests show it."""
    import builtins

    from mmhallu_eval.backends.cached import generate_cached
    from mmhallu_eval.data import _HASHED, open_image

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"read-once-{i}.png")
        Image.new("RGB", (8, 6), (i, 40, 50)).save(paths[-1])
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if str(file).startswith(str(tmp_path)):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    class Decoding(Backend):
        def generate(self, requests):
            return [Response(id=r.id, text=str(open_image(r.images[0]).getpixel((0, 0)))) for r in requests]

    monkeypatch.setattr(builtins, "open", counting_open)
    requests = [Request(id=f"q{k}", messages=user_message(f"question {k}"), images=[str(paths[k % 3])], generation=GenerationConfig())
                for k in range(9)]
    cache = ResponseCache(tmp_path / "cache.sqlite")
    out, _ = generate_cached(Decoding(), requests, cache, batch_size=2, show_progress=False)
    cache.close()
    assert [out[f"q{k}"].text for k in range(9)] == [str((k % 3, 40, 50)) for k in range(9)]
    assert sorted(opened) == sorted(str(p) for p in paths)  # one open per image: the hash's
    assert not any(key[0].startswith(str(tmp_path)) for key in _HASHED.items)  # the bytes dropped once decoded


def test_recently_decoded_images_are_reused_as_copies_and_bounded(tmp_path):
    """A file decoded shortly before is not read again; callers get copies; a rewritten file is decoded afresh; the
    kept pixels stay within the byte budget; a missing file is an error naming it."""
    import os

    from mmhallu_eval.data import _Kept, open_image

    path = tmp_path / "a.png"
    Image.new("RGB", (8, 6), (10, 20, 30)).save(path)
    first = open_image(str(path))
    first.putpixel((0, 0), (255, 255, 255))  # the caller's copy, not the kept one
    second = open_image(str(path))
    assert second.getpixel((0, 0)) == (10, 20, 30) and second.size == (8, 6) and second.mode == "RGB"
    Image.new("RGB", (8, 6), (99, 0, 0)).save(path)
    os.utime(path, ns=(1, 1))  # a changed file: another modification time
    assert open_image(str(path)).getpixel((0, 0)) == (99, 0, 0)
    kept = _Kept(budget=2 * 8 * 6 * 3)
    for i in range(4):
        kept.put((f"{i}.png", i, 0), i, 8 * 6 * 3)
    assert list(kept.items) == [("2.png", 2, 0), ("3.png", 3, 0)] and kept.size <= kept.budget
    assert kept.pop(("3.png", 3, 0)) == 3 and kept.size == 8 * 6 * 3 and kept.get(("3.png", 3, 0)) is None
    with pytest.raises(FileNotFoundError, match="missing image: .*nope.png"):
        open_image(str(tmp_path / "nope.png"))


def test_the_loaded_heap_is_frozen_while_tasks_run_and_handed_back_after(tmp_path, pope_fixture):
    """The runner collects what earlier work left as garbage, keeps the cycle collector off everything alive when
    its tasks start (the loaded model) and hands it back afterwards, even when a task fails; a program that froze
    objects itself is left as it was."""
    import gc
    import weakref

    from mmhallu_eval.heap import frozen_heap
    from mmhallu_eval.runner import RunConfig, run

    class Left:  # e.g. a trained model in a reference cycle, old enough that only a full collection finds it
        pass

    left = Left()
    left.me = left
    gone = weakref.ref(left)
    seen = []

    class Watching(Backend):
        def generate(self, requests):
            seen.append((gc.get_freeze_count(), gone() is None))
            return [Response(id=r.id, text="yes") for r in requests]

    assert gc.get_freeze_count() == 0
    cfg = RunConfig(model="watching", tasks=["pope"], out=tmp_path / "run", limit=8, task_args={"pope": {"data": str(pope_fixture), "images": str(pope_fixture / "images")}},
                    show_progress=False)
    gc.collect()  # `left` survives into the oldest generation
    gc.disable()  # no automatic collection: only the runner's own can free it
    try:
        del left
        assert gone() is not None
        run(cfg, backend=Watching())
    finally:
        gc.enable()
    assert seen and all(n > 0 and freed for n, freed in seen) and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), frozen_heap():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("a failing task")
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        with frozen_heap():
            pass
        # Not unfrozen by the harness (that would leave 0). Frozen objects still die by reference count — another
        # thread's frames, say — so the count may fall a little; it cannot rise unless the harness froze more.
        assert 0 < gc.get_freeze_count() <= mine
    finally:
        gc.unfreeze()


def test_a_stream_that_fails_part_way_keeps_its_groups_and_retries_the_rest(tmp_path):
    """Responses a backend streams are cached group by group; when it fails part-way, what it answered stands and
    only the unanswered requests are retried, one at a time (a bad one becomes a failed sample)."""
    from mmhallu_eval.backends.cached import generate_cached

    class Streaming(Backend):
        default_batch_size = None
        calls: list[list[str]] = []

        def generate(self, requests):
            self.calls.append([r.id for r in requests])
            if any(r.id == "q5" for r in requests):
                raise RuntimeError("bad request")
            return [Response(id=r.id, text=f"answer {r.id}") for r in requests]

        def generate_stream(self, requests):
            self.calls.append([r.id for r in requests])
            for i in range(0, len(requests), 2):
                group = requests[i : i + 2]
                if any(r.id == "q5" for r in group):
                    raise RuntimeError("engine stopped")
                yield [Response(id=r.id, text=f"answer {r.id}") for r in reversed(group)]

    requests = [Request(id=f"q{i}", messages=[{"role": "user", "content": f"question {i}"}], images=[], generation=GenerationConfig()) for i in range(8)]
    cache = ResponseCache(tmp_path / "cache.sqlite")
    puts = []
    inner = cache.put_many
    cache.put_many = lambda items: (puts.append(len(items := list(items))), inner(items))
    out, stats = generate_cached(Streaming(), requests, cache, show_progress=False)
    assert Streaming.calls == [[f"q{i}" for i in range(8)], ["q4"], ["q5"], ["q6"], ["q7"]]
    assert puts == [2, 2, 1, 1, 1, 1]  # q0-q3 in the stream's two groups, then the rest one by one
    assert [out[r.id].text for r in requests if r.id != "q5"] == [f"answer q{i}" for i in range(8) if i != 5]
    assert out["q5"].error.startswith("generation_error: RuntimeError: bad request")
    assert (stats.generated, stats.failed) == (7, 1) and len(cache) == 7
    cache.close()


def test_an_out_folder_is_refused_with_the_way_out_that_works(tmp_path):
    """--overwrite is offered only where it would help: for a run's files without a manifest, not for a folder that
    holds other files (which --overwrite never deletes). A run folder with a user's notes beside it still resumes."""
    from mmhallu_eval.rundir import RunDir, RunDirError

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(RunDirError, match=r"holds files that are not part of a run \(mine.txt\), so it is not a run folder") as err:
            RunDir(notes).check_usable(overwrite)
        assert "or --overwrite" not in str(err.value)
    half = tmp_path / "half"  # a run stopped before its manifest was written
    (half / "pope").mkdir(parents=True)
    (half / "pope" / "samples.jsonl").write_text("")
    with pytest.raises(RunDirError, match=r"holds a run's files but no manifest.json.*or --overwrite to replace those files"):
        RunDir(half).check_usable(False)
    RunDir(half).check_usable(True)
    (half / "manifest.json").write_text("{}")
    (half / "mine.txt").write_text("mine")
    RunDir(half).check_usable(False)  # resuming writes nothing over the notes
    with pytest.raises(RunDirError, match=r"not part of a run \(mine.txt\); --overwrite only replaces a run folder's own files"):
        RunDir(half).check_usable(True)


def test_a_damaged_manifest_is_named_before_the_model_loads_and_overwrite_replaces_it(tmp_path):
    from mmhallu_eval.rundir import RunDir, RunDirError

    run = tmp_path / "run"
    (run / "pope").mkdir(parents=True)
    (run / "pope" / "result.json").write_text("{}")
    for text, says in (("{\n", r"manifest.json:2: not valid JSON"), ("[1, 2]", r"manifest.json: not a run manifest \(a JSON list\)")):
        (run / "manifest.json").write_text(text)
        with pytest.raises(RunDirError, match=says + r".*; restore it, or rerun with --overwrite to replace this run folder"):
            RunDir(run).check_usable(False)
    manifest = RunDir(run).prepare({"model": "m"}, resume=False, overwrite=True)
    assert manifest["history"] == [] and json.loads((run / "manifest.json").read_text())["config"] == {"model": "m"}
    assert not (run / "pope").exists()
