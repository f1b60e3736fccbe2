"""LLaVA checkpoints saved by transformers 5 name the CLIP tower `vision_tower.embeddings...`, which vLLM's loader
cannot map (seen on an H100 with vLLM 0.26: "no module or parameter named 'vision_tower.embeddings'"); a Qwen3-VL-MoE
saved by transformers 5 holds its fused experts transposed from the published layout vLLM's loader reads. The check
finds both from the file headers; the fix renames or transposes them so that transformers still loads the same
weights."""
import json
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForImageTextToText

from mmhallu_eval.backends import BackendError
from mmhallu_eval.backends.vllm_layout import publish_weights, unpublished_weights

CLI = [sys.executable, "-m", "mmhallu_eval.cli", "vllm-layout"]


def test_llava_clip_keys_found_renamed_and_loaded_alike(tiny_llava, tmp_path):
    model = tmp_path / "llava"
    shutil.copytree(tiny_llava, model)
    keys = [u.key for u in unpublished_weights(model)]
    # as a sharded checkpoint would have it: the index must be renamed with the files
    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), framework="pt") as fh:
        names = list(fh.keys())
    (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {k: "model.safetensors" for k in names}}))
    assert keys and all(k.startswith("vision_tower.") and not k.startswith("vision_tower.vision_model.") for k in keys)

    check = subprocess.run([*CLI, str(model)], capture_output=True, text=True)
    assert check.returncode == 1 and f"{len(keys)} weights vLLM cannot load as saved ({len(keys)} to rename;" in check.stdout and "--fix" in check.stdout
    # a damaged index stops the fix before any weights file is rewritten (it used to rename them, then fail on the index)
    index = (model / "model.safetensors.index.json").read_text()
    weights = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors.index.json").write_text(index[:40])
    damaged = subprocess.run([*CLI, str(model), "--fix"], capture_output=True, text=True)
    assert damaged.returncode == 2 and "model.safetensors.index.json:1: not valid JSON" in damaged.stderr, damaged.stderr
    assert (model / "model.safetensors").read_bytes() == weights
    (model / "model.safetensors.index.json").write_text(index)
    fixed = subprocess.run([*CLI, str(model), "--fix"], capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stderr
    assert f"{len(keys)} weights put into the published layout ({len(keys)} to rename)" in fixed.stdout
    assert unpublished_weights(model) == []
    with safe_open(str(model / "model.safetensors"), framework="pt") as fh:
        assert sorted(json.loads((model / "model.safetensors.index.json").read_text())["weight_map"]) == sorted(fh.keys())
    assert publish_weights(model) == 0  # idempotent: nothing left to rename, files untouched
    again = subprocess.run([*CLI, str(model)], capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to change" in again.stdout

    before = AutoModelForImageTextToText.from_pretrained(tiny_llava).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(model).state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_other_models_and_bad_folders_are_left_alone(tiny_idefics3, tmp_path):
    assert unpublished_weights(tiny_idefics3) == []  # not a LLaVA/CLIP checkpoint
    assert unpublished_weights(tmp_path / "missing") == []  # a hub id or a missing folder: vLLM reports it itself
    proc = subprocess.run([*CLI, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "no config.json" in proc.stderr
    # a LLaVA folder whose weights file is not safetensors (a failed download): one error line naming the file
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"architectures": ["LlavaForConditionalGeneration"]}))
    (broken / "model.safetensors").write_bytes(b"<html>rate limited</html>")
    proc = subprocess.run([*CLI, str(broken), "--fix"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().startswith(f"error: {broken / 'model.safetensors'}: not a readable safetensors file (")
    assert (broken / "model.safetensors").read_bytes() == b"<html>rate limited</html>"
    # a damaged config.json is named (it read as "nothing to change"); odd fields of a readable one are not a crash
    (broken / "config.json").write_text("{bad")
    with pytest.raises(BackendError, match=r"config.json: not a readable JSON config \("):
        unpublished_weights(broken)
    (broken / "config.json").write_text("[1]")
    with pytest.raises(BackendError, match=r"config.json: not a model config \(a JSON object\)"):
        unpublished_weights(broken)
    (broken / "config.json").write_text(json.dumps({"architectures": 5, "vision_config": [1]}))
    assert unpublished_weights(broken) == []


@pytest.mark.parametrize("family", ["llava_next", "llava_onevision", "gemma3", "paligemma"])
def test_family_builds_carry_the_published_tower_names_and_load_whole(family, tmp_path):
    """The tiny builds of the other families with a CLIP or SigLIP tower are saved the way their published
    checkpoints are, so vLLM loads them; transformers maps those names back to every weight of the model, and the
    same architecture built and saved by transformers 5 is caught by the check."""
    from safetensors import safe_open

    from mmhallu_eval.world.families import build_family

    model = build_family(family, tmp_path / family)
    assert unpublished_weights(model) == []
    with safe_open(str(model / "model.safetensors"), framework="pt") as fh:
        assert any(".vision_tower.vision_model." in f".{k}" for k in fh.keys())
    loaded, info = AutoModelForImageTextToText.from_pretrained(model, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    type(loaded)(loaded.config).save_pretrained(tmp_path / "fresh")  # built from its config, as `world tiny-model` does
    assert unpublished_weights(tmp_path / "fresh")


@pytest.mark.slow
def test_qwen3_vl_moe_experts_found_transposed_and_loaded_alike(tmp_path):
    """Qwen3-VL-MoE as transformers 5 saves it: fused experts as `[E, 2I, H]` and `[E, H, I]`, where the published
    checkpoints (and vLLM's loader, which transposes them unconditionally) have `[E, H, 2I]` and `[E, I, H]`. The
    tiny build is saved the published way; a fresh save is caught, and the fix gives back the same weights."""
    from safetensors import safe_open

    from mmhallu_eval.world.families import build_family

    built = build_family("qwen3_vl_moe", tmp_path / "built")
    cfg = json.loads((built / "config.json").read_text())["text_config"]
    hidden, inter = cfg["hidden_size"], cfg["moe_intermediate_size"]
    assert unpublished_weights(built) == []
    with safe_open(str(built / "model.safetensors"), framework="pt") as fh:
        shapes = {k.rsplit(".", 1)[1]: fh.get_slice(k).get_shape() for k in fh.keys() if ".layers.0.mlp.experts." in k}
    assert shapes == {"gate_up_proj": [4, hidden, 2 * inter], "down_proj": [4, inter, hidden]}
    loaded, info = AutoModelForImageTextToText.from_pretrained(built, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info

    model = tmp_path / "saved"
    loaded.save_pretrained(model)  # what a user's own save (a merged fine-tune) writes
    found = unpublished_weights(model)
    assert found and all(u.transpose and u.key == u.published and ".mlp.experts." in u.key for u in found)
    assert len(found) == 2 * cfg["num_hidden_layers"]
    assert "(the transformers 5 layout) where vLLM's loader expects [4, 64, 96]" in next(u for u in found if u.key.endswith("gate_up_proj")).describe()
    check = subprocess.run([*CLI, str(model)], capture_output=True, text=True)
    assert check.returncode == 1 and f"{len(found)} weights vLLM cannot load as saved ({len(found)} to transpose;" in check.stdout, check.stdout
    fixed = subprocess.run([*CLI, str(model), "--fix"], capture_output=True, text=True)
    assert fixed.returncode == 0 and f"{len(found)} weights put into the published layout" in fixed.stdout, fixed.stderr
    assert unpublished_weights(model) == [] and publish_weights(model) == 0
    again = AutoModelForImageTextToText.from_pretrained(model).state_dict()
    before = loaded.state_dict()
    assert before.keys() == again.keys() and all(torch.equal(before[k], again[k]) for k in before)


def test_architectures_read_from_any_config_without_failing(tmp_path):
    """The architecture named in vLLM's messages and records comes from one reader: a hub name, a damaged config, a
    JSON list or non-text entries give no name rather than an exception in the middle of reporting another fault."""
    from mmhallu_eval.backends.vllm_layout import model_architectures

    assert model_architectures("org/hub-model") == []
    for name, text, expected in (("ok", '{"architectures": ["LlavaForConditionalGeneration", 3, null]}', ["LlavaForConditionalGeneration"]),
                                 ("list", "[1, 2]", []), ("broken", "{", []), ("odd", '{"architectures": "Llava"}', [])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(text)
        assert model_architectures(str(tmp_path / name)) == expected, name
