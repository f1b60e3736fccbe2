"""LLaVA checkpoints saved by transformers 5 name the CLIP tower `vision_tower.embeddings...`, which vLLM's loader
cannot map (seen on an H100 with vLLM 0.26: "no module or parameter named 'vision_tower.embeddings'"). The check
finds those names from the file headers; the fix renames them so that transformers still loads the same weights."""
import json
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForImageTextToText

from mmhallu_eval.backends import BackendError
from mmhallu_eval.backends.vllm_layout import publish_tower_keys, unpublished_tower_keys

CLI = [sys.executable, "-m", "mmhallu_eval.cli", "vllm-layout"]


def test_llava_clip_keys_found_renamed_and_loaded_alike(tiny_llava, tmp_path):
    model = tmp_path / "llava"
    shutil.copytree(tiny_llava, model)
    keys = unpublished_tower_keys(model)
    # as a sharded checkpoint would have it: the index must be renamed with the files
    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), framework="pt") as fh:
        names = list(fh.keys())
    (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {k: "model.safetensors" for k in names}}))
    assert keys and all(k.startswith("vision_tower.") and not k.startswith("vision_tower.vision_model.") for k in keys)

    check = subprocess.run([*CLI, str(model)], capture_output=True, text=True)
    assert check.returncode == 1 and f"{len(keys)} vision-tower weights" in check.stdout and "--fix" in check.stdout
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
    assert f"renamed {len(keys)} weights" in fixed.stdout
    assert unpublished_tower_keys(model) == []
    with safe_open(str(model / "model.safetensors"), framework="pt") as fh:
        assert sorted(json.loads((model / "model.safetensors.index.json").read_text())["weight_map"]) == sorted(fh.keys())
    assert publish_tower_keys(model) == 0  # idempotent: nothing left to rename, files untouched
    again = subprocess.run([*CLI, str(model)], capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to rename" in again.stdout

    before = AutoModelForImageTextToText.from_pretrained(tiny_llava).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(model).state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_other_models_and_bad_folders_are_left_alone(tiny_idefics3, tmp_path):
    assert unpublished_tower_keys(tiny_idefics3) == []  # not a LLaVA/CLIP checkpoint
    assert unpublished_tower_keys(tmp_path / "missing") == []  # a hub id or a missing folder: vLLM reports it itself
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
    # a damaged config.json is named (it read as "nothing to rename"); odd fields of a readable one are not a crash
    (broken / "config.json").write_text("{bad")
    with pytest.raises(BackendError, match=r"config.json: not a readable JSON config \("):
        unpublished_tower_keys(broken)
    (broken / "config.json").write_text("[1]")
    with pytest.raises(BackendError, match=r"config.json: not a model config \(a JSON object\)"):
        unpublished_tower_keys(broken)
    (broken / "config.json").write_text(json.dumps({"architectures": 5, "vision_config": [1]}))
    assert unpublished_tower_keys(broken) == []


@pytest.mark.parametrize("family", ["llava_next", "llava_onevision", "gemma3", "paligemma"])
def test_family_builds_carry_the_published_tower_names_and_load_whole(family, tmp_path):
    """The tiny builds of the other families with a CLIP or SigLIP tower are saved the way their published
    checkpoints are, so vLLM loads them; transformers maps those names back to every weight of the model, and the
    same architecture built and saved by transformers 5 is caught by the check."""
    from safetensors import safe_open

    from mmhallu_eval.world.families import build_family

    model = build_family(family, tmp_path / family)
    assert unpublished_tower_keys(model) == []
    with safe_open(str(model / "model.safetensors"), framework="pt") as fh:
        assert any(".vision_tower.vision_model." in f".{k}" for k in fh.keys())
    loaded, info = AutoModelForImageTextToText.from_pretrained(model, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    type(loaded)(loaded.config).save_pretrained(tmp_path / "fresh")  # built from its config, as `world tiny-model` does
    assert unpublished_tower_keys(tmp_path / "fresh")
