"""`--backend openai` against a local OpenAI-compatible server that runs the tiny model: same results as the
transformers backend, images sent as base64 data URLs, unreachable servers fail fast."""
import base64
import io
import json
import subprocess
import sys
import threading
import time

from PIL import Image

from judge_server import JudgeServer
from mmhallu_eval import GenerationConfig, Request
from mmhallu_eval.backends import create_backend

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]


def serve_model(backend):
    lock = threading.Lock()

    def chat(body):
        images, content = [], []
        for part in body["messages"][-1]["content"]:
            if part["type"] == "image_url":
                url = part["image_url"]["url"]
                assert url.startswith("data:image/png;base64,")
                images.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
                content.append({"type": "image"})
            else:
                content.append({"type": "text", "text": part["text"]})
        gen = GenerationConfig(max_new_tokens=body.get("max_tokens") or 16, temperature=body.get("temperature", 0.0))
        with lock:
            return backend.generate([Request("x", [{"role": "user", "content": content}], images, gen)])[0].text

    return chat


def test_openai_backend_matches_transformers(tiny_llava, pope_fixture, tmp_path):
    common = ["--tasks", "pope", "--no-progress", "--max-new-tokens", "8", "--limit", "30",
              "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}"]
    direct = tmp_path / "direct"
    proc = subprocess.run([*CLI, "run", "--model", str(tiny_llava), "--out", str(direct), "--device", "cpu", *common], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    backend = create_backend("transformers", model=str(tiny_llava), device="cpu")
    with JudgeServer() as server:
        server.chat_fn = serve_model(backend)
        api = tmp_path / "api"
        proc = subprocess.run([*CLI, "run", "--backend", "openai", "--base-url", server.url, "--model", "tiny", "--out", str(api), "--concurrency", "4", *common], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert server.bodies and server.bodies[0]["temperature"] == 0.0 and server.bodies[0]["max_tokens"] == 8
    a = [json.loads(l) for l in (direct / "pope/samples.jsonl").read_text().splitlines()]
    b = [json.loads(l) for l in (api / "pope/samples.jsonl").read_text().splitlines()]
    assert [r["response"] for r in a] == [r["response"] for r in b]
    assert json.loads((direct / "pope/result.json").read_text())["metrics"] == json.loads((api / "pope/result.json").read_text())["metrics"]
    manifest = json.loads((api / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "openai" and manifest["model"]["base_url"] == server.url


def test_unreachable_base_url_fails_fast(tmp_path, pope_fixture):
    proc = subprocess.run([*CLI, "run", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--tasks", "pope",
                           "--out", str(tmp_path / "r"), "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "cannot reach the OpenAI-compatible server at http://127.0.0.1:9/v1" in proc.stderr


def test_api_errors_are_recorded_per_sample(pope_fixture):
    from mmhallu_eval.backends.openai_backend import OpenAIBackend
    from mmhallu_eval.types import user_message

    image = sorted((pope_fixture / "images").iterdir())[0]
    with JudgeServer() as server:
        server.reply_fn = lambda prompt: "Yes"
        backend = OpenAIBackend("m", base_url=server.url, max_retries=1)
        backend.client.backoff = 0.01
        reqs = [Request(str(i), user_message(text), [str(image)], GenerationConfig(max_new_tokens=4))
                for i, text in enumerate(["Is there a star?", "Is there a ring? FAIL500:99", "Is there a moon? NOCHOICES"])]
        ok, bad, empty = backend.generate(reqs)
    assert ok.text == "Yes" and ok.error is None
    assert bad.error.startswith("api_error: InternalServerError 500") and bad.text == ""
    assert empty.error == "api_error: the server replied without choices (no answer in the reply)" and empty.text == ""


def test_a_server_that_refuses_max_tokens_gets_max_completion_tokens(pope_fixture):
    """OpenAI's reasoning models answer 400 to `max_tokens` (they take `max_completion_tokens`): every sample failed."""
    from mmhallu_eval.backends.openai_backend import OpenAIBackend
    from mmhallu_eval.types import user_message

    image = sorted((pope_fixture / "images").iterdir())[0]
    with JudgeServer() as server:
        server.reply_fn = lambda prompt: "Yes"
        server.refuse_max_tokens = True
        backend = OpenAIBackend("m", base_url=server.url, max_retries=0)
        reqs = [Request(str(i), user_message(f"Is there a {obj}?"), [str(image)], GenerationConfig(max_new_tokens=4)) for i, obj in enumerate(["star", "moon"])]
        first = backend.generate(reqs[:1])
        second = backend.generate(reqs[1:])
    assert [r.text for r in first + second] == ["Yes", "Yes"] and all(r.error is None for r in first + second)
    assert [("max_tokens" in b, b.get("max_completion_tokens")) for b in server.bodies] == [(True, None), (False, 4), (False, 4)]


def test_template_args_go_to_the_server_as_chat_template_kwargs(pope_fixture):
    """vLLM's and SGLang's servers render the model's template with `chat_template_kwargs` (enable_thinking=false)."""
    from mmhallu_eval.backends.openai_backend import OpenAIBackend
    from mmhallu_eval.types import user_message

    image = sorted((pope_fixture / "images").iterdir())[0]
    request = Request("0", user_message("Is there a star?"), [str(image)], GenerationConfig(max_new_tokens=4))
    with JudgeServer() as server:
        server.reply_fn = lambda prompt: "No"
        plain = OpenAIBackend("m", base_url=server.url)
        off = OpenAIBackend("m", base_url=server.url, chat_template_args={"enable_thinking": False})
        assert [r.text for r in plain.generate([request]) + off.generate([request])] == ["No", "No"]
    assert "chat_template_kwargs" not in server.bodies[0] and server.bodies[1]["chat_template_kwargs"] == {"enable_thinking": False}
    assert plain.fingerprint() != off.fingerprint() and off.describe()["chat_template_args"] == {"enable_thinking": False}


def test_a_reasoning_parsers_reply_is_read_as_a_local_reasoning_model(pope_fixture, tmp_path):
    """`vllm serve --reasoning-parser` returns the reasoning apart from the answer (`reasoning_content`, or `reasoning`
    since vLLM 0.11). It goes back inside <think>…</think>: the answer is parsed and the reasoning kept, and a reply cut
    at max_tokens while still reasoning is counted as unfinished, not scored as an empty answer."""
    def reply(prompt):
        if "star" in prompt:
            return {"message": {"content": "No", "reasoning_content": "Yes, I see a circle."}, "finish_reason": "stop"}
        if "ring" in prompt:
            return {"message": {"content": None, "reasoning": "Let me look at the"}, "finish_reason": "length"}
        return {"message": {"content": "\nYes", "reasoning": "A square is there."}, "finish_reason": "stop"}

    data = tmp_path / "data"
    data.mkdir()
    image = sorted((pope_fixture / "images").iterdir())[0].name
    rows = [{"question_id": i + 1, "image": image, "text": f"Is there a {obj} in the image?", "label": label}
            for i, (obj, label) in enumerate([("star", "no"), ("ring", "yes"), ("square", "yes")])]
    (data / "shapes_pope_adversarial.json").write_text("\n".join(json.dumps(r) for r in rows))
    common = ["--tasks", "pope", "--no-progress", "--task-arg", f"pope.data={data}", "--task-arg", f"pope.images={pope_fixture / 'images'}"]
    with JudgeServer() as server:
        server.reply_fn = reply
        out = tmp_path / "strip"
        proc = subprocess.run([*CLI, "run", "--backend", "openai", "--base-url", server.url, "--model", "m", "--out", str(out), *common],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        kept = tmp_path / "keep"
        proc = subprocess.run([*CLI, "run", "--backend", "openai", "--base-url", server.url, "--model", "m", "--out", str(kept),
                               "--reasoning", "keep", *common], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    samples = {r["metadata"]["question"].split()[3]: r for r in map(json.loads, (out / "pope/samples.jsonl").read_text().splitlines())}
    assert samples["star"]["answer"] == "No" and samples["star"]["reasoning"] == "Yes, I see a circle." and samples["star"]["parsed"] == "no"
    assert samples["star"]["response"] == "<think>Yes, I see a circle.</think>No"
    assert samples["square"]["answer"] == "Yes" and samples["square"]["parsed"] == "yes"
    assert samples["ring"]["error"].startswith("unfinished_reasoning: ") and samples["ring"]["parsed"] is None
    result = json.loads((out / "pope/result.json").read_text())
    assert result["errors"]["unfinished_reasoning"] == 1 and result["n_scored"] == 2
    keep = {r["metadata"]["question"].split()[3]: r for r in map(json.loads, (kept / "pope/samples.jsonl").read_text().splitlines())}
    assert keep["star"]["parsed"] == "yes"  # the raw text, reasoning first, as for a local model with --reasoning keep


def test_a_model_that_refuses_temperature_0_samples_at_its_own_default(pope_fixture, tmp_path):
    """OpenAI's reasoning models (o-series, GPT-5) refuse `temperature` 0 and `top_p` with a 400 naming the parameter,
    and `max_tokens` too: every sample failed. The refusals are learnt once each, later requests go without them
    (as lmms-eval and VLMEvalKit send them), a note says so, and the manifest records how the model sampled."""
    with JudgeServer() as server:
        server.reply_fn = lambda prompt: "Yes"
        server.refuse_sampling = server.refuse_max_tokens = True
        out = tmp_path / "r"
        proc = subprocess.run([*CLI, "run", "--backend", "openai", "--base-url", server.url, "--model", "reasoner", "--tasks", "pope", "--out", str(out),
                               "--no-progress", "--limit", "6", "--concurrency", "1", "--task-arg", f"pope.data={pope_fixture}",
                               "--task-arg", f"pope.images={pope_fixture / 'images'}"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        bodies = list(server.bodies)
        # resumed: every answer comes from the cache, so this process learns no refusal; the record still says how
        # the answers it keeps were sampled
        again = subprocess.run([*CLI, "run", "--backend", "openai", "--base-url", server.url, "--model", "reasoner", "--tasks", "pope", "--out", str(out),
                                "--no-progress", "--limit", "6", "--concurrency", "1", "--task-arg", f"pope.data={pope_fixture}",
                                "--task-arg", f"pope.images={pope_fixture / 'images'}", "--resume"], capture_output=True, text=True)
        assert again.returncode == 0 and "6 cached" in again.stderr and "note:" not in again.stderr, again.stderr
        assert len(server.bodies) == len(bodies)
    rows = [json.loads(line) for line in (out / "pope/samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["response"] == "Yes" and r["error"] is None for r in rows)
    assert proc.stderr.count("note: reasoner refuses temperature") == 1, proc.stderr
    refused = [b for b in bodies if "temperature" in b or "max_tokens" in b]
    assert len(refused) == 2 and len(bodies) == 6 + 2  # one refusal of each, then every request went without them
    assert all("temperature" not in b and "top_p" not in b and b["max_completion_tokens"] > 0 for b in bodies[2:])
    manifest = json.loads((out / "manifest.json").read_text())
    sampling = manifest["model"]["sampling"]
    assert sampling.startswith("the model's own default: the server refused") and "Only the default (1) value is supported" in sampling
    result = json.loads((out / "pope/result.json").read_text())  # a reader of the result alone sees it too
    assert result["sampling"] == manifest["tasks"]["pope"]["sampling"] == sampling and result["generation"]["temperature"] == 0.0
    page = subprocess.run([*CLI, "report", str(out)], capture_output=True, text=True)
    assert page.returncode == 0, page.stderr
    html = (out / "report.html").read_text()
    assert "<th>sampling</th><td class=\"bad\" data-sampling>the model&#39;s own default" in html and "Only the default (1) value is supported" in html


def test_a_judge_that_refuses_temperature_0_keeps_its_cache_keys(tmp_path):
    """An OpenAI judge on a reasoning model: the verdicts come back; what the judge records says how it sampled, while
    the cache keys stay those of the judge itself (a resumed run finds its verdicts)."""
    from mmhallu_eval.backends.judge import OpenAIJudge, judge_cache

    with JudgeServer() as server:
        server.reply_fn = lambda prompt: "rating: 5"
        server.refuse_sampling = True
        judge = OpenAIJudge("reasoner", base_url=server.url)
        key = judge.key("Rate this.")
        cache = judge_cache(tmp_path / "judge.sqlite")
        [verdict] = judge.judge(["Rate this."], cache)
        assert verdict.reply == "rating: 5" and verdict.error is None
        assert "sampling" in judge.describe() and "sampling" not in judge.identity() and judge.key("Rate this.") == key
        again = OpenAIJudge("reasoner", base_url=server.url)
        [cached] = again.judge(["Rate this."], cache)
        cache.close()
    assert cached.cached and cached.reply == "rating: 5"


def test_a_rate_limit_is_waited_out_as_its_retry_after_asks():
    """A 429 (or 503) with `Retry-After` is retried after the wait it asks for, not the backoff: OpenAI's and Azure's
    rate limits say how long; a longer backoff idles, a shorter one spends a retry. Seconds, milliseconds and HTTP
    dates are read; a wait over a minute, or a header that says nothing usable, falls back to the backoff."""
    from email.utils import formatdate
    from types import SimpleNamespace

    from mmhallu_eval.backends.openai_chat import ChatClient, retry_after

    def refusal(headers):
        return SimpleNamespace(response=SimpleNamespace(headers=headers))

    assert retry_after(refusal({"retry-after": "2"})) == 2.0 and retry_after(refusal({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert 3 < retry_after(refusal({"retry-after": formatdate(time.time() + 5, usegmt=True)})) <= 5
    assert retry_after(refusal({"retry-after": formatdate(time.time() - 5, usegmt=True)})) == 0.0
    for headers in ({"retry-after": "3600"}, {"retry-after": "soon"}, {"retry-after-ms": "nan"}, {}):
        assert retry_after(refusal(headers)) is None, headers
    assert retry_after(ValueError("no response")) is None
    with JudgeServer() as server:
        server.limit_headers = {"retry-after": "0.4"}
        client = ChatClient(server.url, "judge", backoff=30.0)  # the backoff alone would wait 30 s
        started = time.monotonic()
        [reply] = client.complete([[{"role": "user", "content": "### LMM Response to Evaluate RATE=2 FAIL429:1"}]])
        took = time.monotonic() - started
    assert reply.error is None and "Rating: 2" in reply.text and reply.attempts == 2
    assert 0.4 <= took < 10 and len(server.limited_at) == 1
