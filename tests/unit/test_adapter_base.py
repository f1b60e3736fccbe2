"""An adapter is refused when its adapter_config.json names another base model than --model (both backends), or when
its folder is damaged: a config that does not read, no weights file (PEFT would look for one on the hub)."""
import json

import pytest

from mmhallu_eval.backends.base import BackendError, check_adapter_base
from mmhallu_eval.errors import UserError


def _adapter(tmp_path, base):
    d = tmp_path / "adapter"
    d.mkdir(exist_ok=True)
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": 8}))
    (d / "adapter_model.safetensors").write_bytes(b"lora")
    return str(d)


def _model(path, weights: bytes):
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(weights)
    (path / "config.json").write_text("{}")
    return path


def test_same_model_in_any_spelling_is_accepted(tmp_path):
    m = _model(tmp_path / "models" / "base", b"w1")
    check_adapter_base(str(m), _adapter(tmp_path, str(m)))
    check_adapter_base(str(m), _adapter(tmp_path, "elsewhere/base"))  # trained on another machine: same final name
    copy = _model(tmp_path / "copy", b"w1")
    check_adapter_base(str(copy), _adapter(tmp_path, str(m)))  # same weights under another path
    check_adapter_base("org/model", _adapter(tmp_path, "org/model"))


def test_other_base_model_is_refused(tmp_path):
    a, b = _model(tmp_path / "a", b"w1"), _model(tmp_path / "b", b"w2")
    with pytest.raises(BackendError, match="was trained on .* but --model is"):
        check_adapter_base(str(b), _adapter(tmp_path, str(a)))
    with pytest.raises(BackendError, match="org/other"):
        check_adapter_base("org/model", _adapter(tmp_path, "org/other"))


def test_not_an_adapter_folder(tmp_path):
    with pytest.raises(BackendError, match="no adapter_config.json"):
        check_adapter_base("m", str(tmp_path))


def test_a_damaged_adapter_folder_is_named(tmp_path):
    adapter = _adapter(tmp_path, "m")
    config = tmp_path / "adapter" / "adapter_config.json"
    config.write_text("{r: 8")
    with pytest.raises(UserError, match=f"{config}:1: not valid JSON"):
        check_adapter_base("m", adapter)
    config.write_text("[]")
    with pytest.raises(BackendError, match="not a PEFT adapter config"):
        check_adapter_base("m", adapter)
    config.write_text(json.dumps({"base_model_name_or_path": "m"}))
    (tmp_path / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises(BackendError, match="no adapter_model.safetensors or adapter_model.bin there"):
        check_adapter_base("m", adapter)


def test_vllm_lora_rank_covers_the_adapter_and_a_bad_rank_is_named(tmp_path):
    from mmhallu_eval.backends.vllm_backend import _lora_rank

    adapter = _adapter(tmp_path, "m")
    config = tmp_path / "adapter" / "adapter_config.json"
    for settings, rank in (({"r": 16}, 16), ({"r": 8, "rank_pattern": {"q_proj": 40}}, 64), ({}, 8)):
        config.write_text(json.dumps(settings))
        assert _lora_rank(adapter) == rank
    for settings in ({"r": "16"}, {"r": 0}, {"r": 8, "rank_pattern": [4]}):
        config.write_text(json.dumps(settings))
        with pytest.raises(BackendError, match="the LoRA rank .* must be whole numbers of at least 1"):
            _lora_rank(adapter)
