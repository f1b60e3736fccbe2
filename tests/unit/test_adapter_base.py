"""An adapter is refused when its adapter_config.json names another base model than --model (both backends)."""
import json

import pytest

from mmhallu_eval.backends.base import BackendError, check_adapter_base


def _adapter(tmp_path, base):
    d = tmp_path / "adapter"
    d.mkdir(exist_ok=True)
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": 8}))
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
