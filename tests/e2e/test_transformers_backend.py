"""The transformers backend on tiny LLaVA and Idefics3 models built offline."""
import pytest

from mmhallu_eval import GenerationConfig, get_task
from mmhallu_eval.backends import BackendError, create_backend


@pytest.fixture(scope="module")
def pope_requests(pope_fixture):
    spec = get_task("pope")
    samples = spec.load({"data": str(pope_fixture), "images": str(pope_fixture / "images")})
    # mixed prompt lengths so that left padding is exercised inside each batch
    samples = samples[:12] + [s for s in samples if s.group == "random"][:12]
    for i, s in enumerate(samples):
        s.prompt = s.prompt + " Please answer." * (i % 3)
    return [spec.build_request(s, GenerationConfig(max_new_tokens=12)) for s in samples]


@pytest.mark.parametrize("arch", ["tiny_llava", "tiny_idefics3"])
def test_greedy_outputs_identical_for_batch_1_and_8(arch, request, pope_requests):
    backend = create_backend("transformers", model=str(request.getfixturevalue(arch)), device="cpu", dtype="auto")
    single = [backend.generate([r])[0] for r in pope_requests]
    batched = [resp for i in range(0, len(pope_requests), 8) for resp in backend.generate(pope_requests[i : i + 8])]
    assert [r.id for r in batched] == [r.id for r in pope_requests]
    assert [r.text for r in single] == [r.text for r in batched]
    assert all(r.error is None and r.n_output_tokens and r.n_output_tokens <= 12 for r in batched)
    assert len({r.text for r in batched}) > 1, "different images/prompts should give different outputs"


def test_describe_and_fingerprint(tiny_llava):
    import torch

    backend = create_backend("transformers", model=str(tiny_llava), device="auto", dtype="auto")
    info = backend.describe()
    if torch.cuda.is_available():
        assert info["device"].startswith("cuda")
    else:
        assert info["device"] == "cpu" and info["dtype"] == "float32"  # auto without CUDA
    assert info["model_fingerprint"] == backend.fingerprint() and len(backend.fingerprint()) == 32


def test_the_checkpoints_decoding_settings_are_left_out_as_in_vllm(tiny_llava, pope_requests, tmp_path):
    """A checkpoint's generation_config.json may ask for a repetition penalty or top-k (Qwen2-VL's does). vLLM, given
    sampling settings, applies only its stop tokens; transformers applied everything. Left out here too, the greedy
    answers are the plain model's, and what was left out is written into the manifest."""
    import json
    import shutil

    from transformers import GenerationConfig as HFGenerationConfig

    model = tmp_path / "with-settings"
    shutil.copytree(tiny_llava, model)
    cfg = json.loads((model / "generation_config.json").read_text())
    settings = {"do_sample": True, "temperature": 0.1, "top_k": 1, "repetition_penalty": 3.0, "no_repeat_ngram_size": 1}
    (model / "generation_config.json").write_text(json.dumps({**cfg, **settings}))
    batch = pope_requests[:6]
    plain = create_backend("transformers", model=str(tiny_llava), device="cpu", dtype="float32")
    assert "generation_config_ignored" not in plain.describe()
    expected = [r.text for r in plain.generate(batch)]
    backend = create_backend("transformers", model=str(model), device="cpu", dtype="float32")
    assert backend.describe()["generation_config_ignored"] == settings
    assert backend.model.generation_config.eos_token_id == cfg["eos_token_id"]
    assert [r.text for r in backend.generate(batch)] == expected
    backend.model.generation_config = HFGenerationConfig.from_pretrained(model)  # what transformers applied before
    assert [r.text for r in backend.generate(batch)] != expected, "the settings must change the answers for this test to mean anything"
    # a config whose end token is not the tokenizer's: vLLM stops at both, and so does the backend
    (model / "generation_config.json").write_text(json.dumps({**cfg, "eos_token_id": 5}))
    backend = create_backend("transformers", model=str(model), device="cpu", dtype="float32")
    assert backend.model.generation_config.eos_token_id == [5, backend.tokenizer.eos_token_id] != [5, 5]


def test_answers_stop_at_the_models_context(tiny_llava, pope_requests):
    """Prompt and answer together stop at the model's context, as vLLM stops them: each row of a batch is cut to its
    own room (the greedy answer with that many new tokens), and a prompt that fills the context alone fails."""
    import dataclasses

    backend = create_backend("transformers", model=str(tiny_llava), device="cpu", dtype="auto")
    assert backend.context == 1024 == backend.describe()["context"]
    batch = pope_requests[:8]
    lengths = [r.n_prompt_tokens for r in backend.generate(batch)]
    assert len(set(lengths)) > 1, "the batch needs prompts of different lengths"
    context = backend.context = sorted(lengths)[len(lengths) // 2] + 4
    capped = backend.generate(batch)
    backend.context = None
    for req, resp, n in zip(batch, capped, lengths):
        room = context - n
        if room <= 0:
            assert resp.error == f"invalid_request: the prompt ({n} tokens) does not fit the model's context of {context} tokens"
            continue
        alone = backend.generate([dataclasses.replace(req, generation=GenerationConfig(max_new_tokens=min(12, room)))])[0]
        assert resp.error is None and (resp.text, resp.n_output_tokens) == (alone.text, alone.n_output_tokens)
    assert any(r.error for r in capped) and any(r.error is None for r in capped)


def test_context_length_from_the_config():
    from transformers import Gemma3Config, LlamaConfig, Qwen2VLConfig

    from mmhallu_eval.backends.hf_model import context_length

    assert context_length(Qwen2VLConfig()) == 32768
    assert context_length(Gemma3Config()) == 131072  # rope per layer type, stated already scaled
    assert context_length(LlamaConfig(max_position_embeddings=4096, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4})) == 8192
    yarn = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4, "original_max_position_embeddings": 4096}
    assert context_length(LlamaConfig(max_position_embeddings=16384, rope_parameters=yarn)) == 16384
    assert context_length(Qwen2VLConfig(), tokenizer_max=8192) == 8192  # tokenizer_config.json's model_max_length
    assert context_length(Qwen2VLConfig(), tokenizer_max=int(1e30)) == 32768  # transformers' "not set"


def test_auto_dtype_keeps_a_float16_checkpoint_in_float16_on_cuda():
    """llava-hf's LLaVA-1.5 is published in float16, and vLLM's `auto` runs it so; bfloat16
    rounds differently. Read from `dtype` or the older `torch_dtype`, top level or text config."""
    import torch
    from transformers import LlavaConfig

    from mmhallu_eval.backends.hf_model import checkpoint_dtype
    from mmhallu_eval.backends.transformers_backend import _pick_dtype

    old_style = LlavaConfig.from_dict({"torch_dtype": "float16"})
    text_only = LlavaConfig(text_config={"model_type": "llama", "dtype": "bfloat16"})
    assert checkpoint_dtype(old_style) == torch.float16 and checkpoint_dtype(text_only) == torch.bfloat16
    assert checkpoint_dtype(LlavaConfig()) is None
    assert _pick_dtype("auto", "cuda:0", old_style) == torch.float16
    assert _pick_dtype("auto", "cpu", old_style) == torch.float32
    assert _pick_dtype("bfloat16", "cuda", old_style) == torch.bfloat16


def test_missing_model_folder_is_clear(tmp_path):
    with pytest.raises(BackendError, match="does not exist"):
        create_backend("transformers", model=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="could not load"):
        create_backend("transformers", model=str(tmp_path / "empty"))


def _needs_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (none here)")


@pytest.mark.gpu
@pytest.mark.parametrize("arch", ["tiny_llava", "tiny_idefics3"])
def test_cuda_float32_matches_cpu(arch, request, pope_requests):
    """The same greedy answers on the GPU as on the CPU (float32), batched as the runner batches."""
    _needs_cuda()
    model = str(request.getfixturevalue(arch))
    cpu = create_backend("transformers", model=model, device="cpu", dtype="float32").generate(pope_requests)
    gpu = create_backend("transformers", model=model, device="cuda", dtype="float32")
    assert gpu.describe()["device"].startswith("cuda")
    out = [r for i in range(0, len(pope_requests), 8) for r in gpu.generate(pope_requests[i : i + 8])]
    assert [r.text for r in out] == [r.text for r in cpu]
    assert all(r.error is None for r in out)


@pytest.mark.gpu
def test_cuda_bfloat16_generates(tiny_llava, pope_requests):
    _needs_cuda()
    backend = create_backend("transformers", model=str(tiny_llava), device="cuda", dtype="bfloat16")
    assert backend.describe()["dtype"] == "bfloat16"
    out = backend.generate(pope_requests[:8])
    assert all(r.error is None and r.n_output_tokens for r in out)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_batches_prepared_ahead_give_the_same_responses(device, tiny_idefics3, pope_requests, tmp_path):
    """With the next batch encoded in a worker thread while one generates (opt-in), the responses equal those of
    batches encoded in turn, and their order is kept."""
    from mmhallu_eval.backends.cached import generate_cached
    from mmhallu_eval.cache import ResponseCache

    if device == "cuda":
        _needs_cuda()
    backend = create_backend("transformers", model=str(tiny_idefics3), device=device, dtype="float32")
    assert backend.prefetch is False and create_backend("transformers", model=str(tiny_idefics3), device=device, prefetch=True).prefetch
    runs = {}
    for ahead in (False, True):
        backend.prefetch = ahead
        cache = ResponseCache(tmp_path / f"cache-{ahead}.sqlite")
        responses, stats = generate_cached(backend, pope_requests, cache, batch_size=5, show_progress=False)
        cache.close()
        assert stats.failed == 0
        runs[ahead] = [(responses[r.id].text, responses[r.id].n_prompt_tokens) for r in pope_requests]
    assert runs[True] == runs[False]
