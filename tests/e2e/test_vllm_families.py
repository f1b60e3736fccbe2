"""Every family on `--backend vllm`, loaded as transformers saves it (a user's own save): where the installed vLLM
runs it, the prompt ids vLLM schedules are the transformers processor's own (one BOS where the template writes one
and the tokenizer adds one) and the answers equal the transformers backend's; where it cannot, the reason is one line
(and the test records it as a skip). `RUNS_ON_VLLM_CPU` are the families vllm-cpu 0.32 runs (the CI's vLLM stage,
which installs torchvision): they must pass. Without torchvision, vLLM's modules for every family but Idefics3 import
it, so only that one must."""
import json
import os

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed: these run in the vllm-cpu CI stage (.ci/run-vllm) or with pip install 'mmhallu-eval[vllm]'")
pytestmark = [pytest.mark.slow, pytest.mark.vllm]

from mmhallu_eval import GenerationConfig, get_task  # noqa: E402
from mmhallu_eval.backends.base import BackendError  # noqa: E402
from mmhallu_eval.backends.hf_processor import torchvision_available  # noqa: E402
from mmhallu_eval.backends.vllm_layout import publish_weights  # noqa: E402
from mmhallu_eval.world.families import FAMILIES, build_family, missing_packages  # noqa: E402
from model_saves import saved_by_transformers  # noqa: E402

#: Mllama: vLLM 0.32 has no implementation of it and its Transformers fallback cannot use Mllama's processor
RUNS_ON_VLLM_CPU = set(FAMILIES) - {"mllama"} if torchvision_available() else {"idefics3"}
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
#: vLLM's CPU kernel for Gated DeltaNet layers (Qwen3.5 and its MoE) runs in bfloat16 only; both engines run those families in it
DTYPES = {"qwen3_5": "bfloat16", "qwen3_5_moe": "bfloat16"}


@pytest.fixture(scope="module")
def requests_(pope_fixture):
    spec = get_task("pope")
    samples = spec.load({"data": str(pope_fixture), "images": str(pope_fixture / "images")})[:6]
    for i, s in enumerate(samples):
        s.prompt += " Please answer." * (i % 3)
    return [spec.build_request(s, GenerationConfig(max_new_tokens=8)) for s in samples]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_vllm_feeds_the_processors_ids_and_matches_transformers(family, requests_, tmp_path):
    from mmhallu_eval.backends.transformers_backend import TransformersBackend
    from mmhallu_eval.backends.vllm_backend import VLLMBackend

    missing = missing_packages(family)
    if missing:
        pytest.skip(f"{family}: transformers' processor for this family needs {', '.join(missing)}, which is not installed")
    model = build_family(family, tmp_path / family)
    saved = saved_by_transformers(model, tmp_path / "saved")
    publish_weights(saved)  # `mmhallu vllm-layout --fix`: it changes only Qwen3-VL-MoE's experts
    try:
        engine = VLLMBackend(str(saved), dtype=DTYPES.get(family, "float32"), enforce_eager=True, max_model_len=1024)
    except BackendError as exc:
        if family in RUNS_ON_VLLM_CPU:
            raise
        pytest.skip(f"{family}: {exc}")
    try:
        hf = TransformersBackend(str(model), device="cpu", dtype=DTYPES.get(family, "float32"))
        expected = hf.generate(requests_)
        try:
            got = engine.generate(requests_)
        except Exception as exc:  # e.g. vLLM's Transformers fallback starts but cannot run the model
            if family in RUNS_ON_VLLM_CPU:
                raise
            pytest.skip(f"{family}: vLLM started but failed to generate ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        assert [r.text for r in got] == [r.text for r in expected]
        assert [r.n_prompt_tokens for r in got] == [r.n_prompt_tokens for r in expected]
        # the exact ids vLLM scheduled, against the processor's own tokenize=True ids
        for request in requests_:
            [(prompt, add_special)] = engine._prompts([request])
            out = engine.llm.generate([prompt], engine._sampling(request.generation), use_tqdm=False,
                                      tokenization_kwargs={"add_special_tokens": add_special})[0]
            own = hf.encode([request])["input_ids"][0].tolist()
            assert list(out.prompt_token_ids) == own, f"{family}: vLLM's prompt ids differ from the processor's"
        assert json.dumps(engine.describe()["prompt_format"]) == json.dumps(hf.describe()["prompt_format"])
    finally:
        engine.close()


def test_gemma4_reasoning_channel_is_kept_on_vllm(pope_fixture, tmp_path):
    """With `enable_thinking`, Gemma 4 reasons between two special tokens, `<|channel>` and `<channel|>`: vLLM's
    answers keep them as the transformers backend's do (the same decoder), so the reasoning is read apart. Asked the
    fixture's questions as they are, which the tiny model was taught (`TAUGHT_PROMPTS`) to reason about."""
    if "gemma4" not in RUNS_ON_VLLM_CPU:
        pytest.skip("vLLM's Gemma 4 module imports torchvision, which is not installed")
    from mmhallu_eval.backends.transformers_backend import TransformersBackend
    from mmhallu_eval.backends.vllm_backend import VLLMBackend

    model = str(build_family("gemma4", tmp_path / "gemma4"))
    args = {"enable_thinking": True}
    spec = get_task("pope")
    samples = spec.load({"data": str(pope_fixture), "images": str(pope_fixture / "images")})[:6]
    requests = [spec.build_request(s, GenerationConfig(max_new_tokens=40)) for s in samples]
    expected = TransformersBackend(model, device="cpu", chat_template_args=args).generate(requests)
    engine = VLLMBackend(model, dtype="float32", enforce_eager=True, max_model_len=1024, chat_template_args=args)
    try:
        got = engine.generate(requests)
    finally:
        engine.close()
    assert [r.text for r in got] == [r.text for r in expected]
    assert all(r.text.startswith("<|channel>thought\n") for r in got), [r.text for r in got]
