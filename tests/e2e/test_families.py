"""Every supported VLM family, as a tiny random-weight build: it loads without torchvision, the ids the backend feeds
are the processor's own `apply_chat_template(tokenize=True)` ids (one BOS, never two), batch 1 and batch 4 agree
(answers and next-token logits), and `mmhallu run` completes POPE and CHAIR with the prompt length recorded."""
import json

import pytest
import torch
from typer.testing import CliRunner

from mmhallu_eval import GenerationConfig, get_task
from mmhallu_eval.backends.hf_prompt import render, with_images
from mmhallu_eval.cli import app
from mmhallu_eval.world.families import FAMILIES, build_family, missing_packages

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory):
    built = {}

    def get(name: str):
        missing = missing_packages(name)
        if missing:
            pytest.skip(f"{name}: transformers' processor for this family needs {', '.join(missing)}, which is not installed")
        if name not in built:
            built[name] = build_family(name, tmp_path_factory.mktemp("families") / name)
        return built[name]

    return get


@pytest.fixture(scope="module")
def requests_(pope_fixture):
    spec = get_task("pope")
    samples = spec.load({"data": str(pope_fixture), "images": str(pope_fixture / "images")})[:4]
    for i, s in enumerate(samples):  # different prompt lengths: left padding inside the batch
        s.prompt += " Please answer." * i
    return [spec.build_request(s, GenerationConfig(max_new_tokens=8)) for s in samples]


def _own_ids(backend, request) -> list[int]:
    """What the processor itself gives for one request, unbatched."""
    fmt = backend.prompt_format
    if fmt.kind == "processor":
        from mmhallu_eval.backends.hf_prompt import prompt_text
        from mmhallu_eval.data import open_image

        return list(backend.processor(text=prompt_text(request), images=[open_image(im) for im in request.images])["input_ids"][0])
    enc = backend.processor.apply_chat_template(with_images(request), add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(enc["input_ids"][0])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_prompt_ids_batching_and_run(family, family_dir, requests_, pope_fixture, coco_fixture, tmp_path):
    from mmhallu_eval.backends.transformers_backend import TransformersBackend

    model_dir = family_dir(family)
    backend = TransformersBackend(str(model_dir), device="cpu")

    # prompt ids: the batch rows (left padding removed) are the processor's own ids, with at most one leading BOS
    batch = backend.encode(requests_)
    for row, mask, request in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist(), requests_):
        ids = [t for t, m in zip(row, mask) if m]
        assert ids == _own_ids(backend, request)
        bos = backend.tokenizer.bos_token_id
        if bos is not None:
            assert ids[:2] != [bos, bos], f"{family}: two BOS tokens"

    # the text prompts engines that tokenise themselves get (vLLM): one call for the list, each the processor's own
    together = render(backend.processor, backend.prompt_format, requests_)
    assert together == [render(backend.processor, backend.prompt_format, [r])[0] for r in requests_]
    if backend.prompt_format.kind == "chat_template":
        assert [text for text, _ in together] == [backend.processor.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False)
                                                  for r in requests_]

    # batch 1 == batch 4: answers, prompt lengths and next-token logits
    single = [backend.generate([r])[0] for r in requests_]
    batched = backend.generate(requests_)
    assert [r.text for r in single] == [r.text for r in batched]
    assert [r.n_prompt_tokens for r in single] == [r.n_prompt_tokens for r in batched] == [len(_own_ids(backend, r)) for r in requests_]
    with torch.inference_mode():
        together = backend.model(**batch).logits[:, -1]
        alone = torch.cat([backend.model(**backend.encode([r])).logits[:, -1] for r in requests_])
    assert torch.allclose(together, alone, atol=1e-4, rtol=1e-4), f"{family}: max diff {(together - alone).abs().max():.2e}"

    # the CLI end to end: POPE and CHAIR complete, and samples.jsonl records the processor's prompt length
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", "--model", str(model_dir), "--tasks", "pope,chair", "--out", str(out), "--no-progress", "--device", "cpu", "--limit", "4",
        "--max-new-tokens", "48", "--batch-size", "4",
        "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}",
        "--task-arg", f"chair.coco_annotations={coco_fixture}", "--task-arg", f"chair.images={coco_fixture / 'val2014'}",
        "--task-arg", "chair.n_images=4",
    ])
    assert result.exit_code == 0, result.output
    for task in ("pope", "chair"):
        res = json.loads((out / task / "result.json").read_text())
        assert res["n"] >= 4 and res["n_scored"] == res["n"], res["errors"]
        rows = [json.loads(line) for line in (out / task / "samples.jsonl").read_text().splitlines()]
        assert all(isinstance(r["n_prompt_tokens"], int) and r["n_prompt_tokens"] > 0 for r in rows)
    pope_rows = [json.loads(line) for line in (out / "pope/samples.jsonl").read_text().splitlines()]
    spec = get_task("pope")
    by_id = {s.id: s for s in spec.load({"data": str(pope_fixture), "images": str(pope_fixture / "images")})}
    for row in pope_rows:
        request = spec.build_request(by_id[row["id"]], GenerationConfig())
        assert row["n_prompt_tokens"] == len(_own_ids(backend, request))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["prompt_format"]["kind"] == backend.prompt_format.kind


def test_reasoning_strip_keep_and_unfinished(family_dir, pope_fixture, tmp_path):
    """A Thinking-style model (its generation prompt opens <think>): strip parses the answer after </think> and keeps
    the raw text; keep parses the raw text; a block cut off before </think> is counted, never scored."""
    model_dir = family_dir("qwen3_vl_thinking")
    args = ["run", "--model", str(model_dir), "--tasks", "pope", "--no-progress", "--device", "cpu", "--limit", "6",
            "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}"]
    runner = CliRunner()
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "strip"), "--max-new-tokens", "48"]).exit_code == 0
    rows = [json.loads(line) for line in (tmp_path / "strip/pope/samples.jsonl").read_text().splitlines()]
    assert all(r["parsed"] == "no" and r["answer"] == "No" and "</think>" in r["response"] and r["reasoning"] for r in rows)
    result = json.loads((tmp_path / "strip/pope/result.json").read_text())
    assert result["reasoning"] == "strip" and result["n_scored"] == 6

    assert runner.invoke(app, [*args, "--out", str(tmp_path / "keep"), "--max-new-tokens", "48", "--reasoning", "keep"]).exit_code == 0
    kept = [json.loads(line) for line in (tmp_path / "keep/pope/samples.jsonl").read_text().splitlines()]
    assert all("answer" not in r and r["parsed"] == "yes" for r in kept)  # pope-official reads the reasoning's "Yes, …" as yes
    assert json.loads((tmp_path / "keep/pope/result.json").read_text())["reasoning"] == "keep"

    cut = runner.invoke(app, [*args, "--out", str(tmp_path / "cut"), "--max-new-tokens", "3"])
    assert cut.exit_code == 1 and "unfinished_reasoning 6" in cut.output
    result = json.loads((tmp_path / "cut/pope/result.json").read_text())
    assert result["errors"]["unfinished_reasoning"] == 6 and result["n_scored"] == 0
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--reasoning", "drop"]).exit_code == 2


def test_template_args_turn_a_hybrid_models_reasoning_off(family_dir, pope_fixture, tmp_path):
    """Qwen3.5 opens <think> by default; `--chat-template-arg enable_thinking=false` renders the block closed, so the
    model answers at once. The ids are the processor's own with that variable, the manifest and the model fingerprint
    carry it (answers cached with reasoning on are not reused), and a name the template does not read is refused."""
    from mmhallu_eval.backends.transformers_backend import TransformersBackend

    model_dir = family_dir("qwen3_5")
    spec = get_task("pope")
    request = spec.build_request(spec.load({"data": str(pope_fixture), "images": str(pope_fixture / "images")})[0], GenerationConfig(max_new_tokens=40))
    on = TransformersBackend(str(model_dir), device="cpu")
    off = TransformersBackend(str(model_dir), device="cpu", chat_template_args={"enable_thinking": False})
    assert on.prompt_format.opens_reasoning and not off.prompt_format.opens_reasoning
    own = off.processor.apply_chat_template(with_images(request), add_generation_prompt=True, tokenize=True, return_dict=True, enable_thinking=False)
    assert off.encode([request])["input_ids"][0].tolist() == list(own["input_ids"][0])
    assert off.tokenizer.decode(own["input_ids"][0][-6:]).endswith("<think>\n\n</think>\n\n")
    assert render(off.processor, off.prompt_format, [request])[0][0].endswith("<think>\n\n</think>\n\n")
    assert off.fingerprint() != on.fingerprint()
    assert off.describe()["prompt_format"]["template_args"] == {"enable_thinking": False}
    assert "</think>" in on.generate([request])[0].text and "</think>" not in off.generate([request])[0].text

    args = ["run", "--model", str(model_dir), "--tasks", "pope", "--no-progress", "--device", "cpu", "--limit", "4", "--max-new-tokens", "40",
            "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}"]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "off"), "--chat-template-arg", "enable_thinking=false"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "off/manifest.json").read_text())
    assert manifest["config"]["backend_args"]["chat_template_args"] == {"enable_thinking": False}
    assert manifest["model"]["prompt_format"]["template_args"] == {"enable_thinking": False}
    rows = [json.loads(line) for line in (tmp_path / "off/pope/samples.jsonl").read_text().splitlines()]
    assert all(r["response"] == "No" and r["parsed"] == "no" for r in rows)
    for given, says in (("enable_thinkng=false", "--chat-template-arg enable_thinkng: the chat template of"),
                        ("enable_thinking", "--chat-template-arg 'enable_thinking': expected NAME=VALUE")):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--chat-template-arg", given])
        assert result.exit_code == 2 and says in result.output, result.output
    assert not (tmp_path / "bad").exists()


def test_gemma4_reasoning_channel_is_read_apart_from_the_answer(family_dir, pope_fixture, tmp_path):
    """Gemma 4 reasons, with `enable_thinking`, in `<|channel>thought\\n…<channel|>`: special tokens, which a plain
    decode drops, running the reasoning into the answer. The response keeps them, the parser reads the answer after
    `<channel|>`, and the reasoning is recorded without the channel's name; without the variable the template writes
    the channel closed and empty, and the model answers at once."""
    from mmhallu_eval.world.families.gemma import GEMMA4_THINKING_REPLY

    model_dir = family_dir("gemma4")
    args = ["run", "--model", str(model_dir), "--tasks", "pope", "--no-progress", "--device", "cpu", "--limit", "6", "--max-new-tokens", "48",
            "--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}"]
    runner = CliRunner()
    runner.invoke(app, [*args, "--out", str(tmp_path / "on"), "--chat-template-arg", "enable_thinking=true"])
    rows = [json.loads(line) for line in (tmp_path / "on/pope/samples.jsonl").read_text().splitlines()]
    closed = [r for r in rows if "<channel|>" in r["response"]]
    assert len(closed) >= 4, [r["response"] for r in rows]
    taught = GEMMA4_THINKING_REPLY.removesuffix("<turn|>")
    assert all(r["response"] == taught and r["answer"] == "No" and r["parsed"] == "no" for r in closed)
    assert all(r["reasoning"] == "Yes, a dog would fit here. Looking closer, it is only a shape." for r in closed)
    result = json.loads((tmp_path / "on/pope/result.json").read_text())
    assert result["n_scored"] == len(closed) and result["errors"].get("unfinished_reasoning", 0) == len(rows) - len(closed)

    assert runner.invoke(app, [*args, "--out", str(tmp_path / "off")]).exit_code == 0
    rows = [json.loads(line) for line in (tmp_path / "off/pope/samples.jsonl").read_text().splitlines()]
    assert all(r["response"] == "No" and "reasoning" not in r for r in rows)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_model_saved_by_transformers_is_in_a_layout_vllm_loads_or_is_caught(family, family_dir, tmp_path):
    """What a user's own save writes (a fine-tune loaded from the published layout and saved whole): every family's
    weights come back under the published names and shapes, which vLLM loads (`test_vllm_families.py` runs vLLM on
    such a save), but for Qwen3-VL-MoE's fused experts, which transformers 5 writes transposed: those are caught
    before vLLM starts, and the fix restores the same weights."""
    from transformers import AutoModelForImageTextToText

    from mmhallu_eval.backends.vllm_layout import publish_weights, unpublished_weights

    model = AutoModelForImageTextToText.from_pretrained(family_dir(family))
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    found = unpublished_weights(saved)
    if family != "qwen3_vl_moe":
        assert found == [], [u.key for u in found]
        return
    assert found and all(u.transpose and ".mlp.experts." in u.key for u in found)
    assert publish_weights(saved) == len(found) and unpublished_weights(saved) == []
    again = AutoModelForImageTextToText.from_pretrained(saved).state_dict()
    assert all(torch.equal(value, again[key]) for key, value in model.state_dict().items())
