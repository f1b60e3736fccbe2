"""The vLLM backend's socket folder (vLLM leaves its ZeroMQ socket files in VLLM_RPC_BASE_PATH): one of its own per
engine, set only while the engine starts, removed when the backend closes; a folder the user chose is left alone.
Runs without vLLM; the whole run is checked in tests/e2e/test_vllm_backend.py."""
import os
import tempfile
from pathlib import Path

import pytest

from mmhallu_eval.backends.vllm_backend import _own_socket_dir


def test_an_engine_gets_a_folder_of_its_own_only_while_it_starts(monkeypatch, tmp_path):
    monkeypatch.delenv("VLLM_RPC_BASE_PATH", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the temp folder
    with _own_socket_dir() as folder:
        assert folder is not None and os.environ["VLLM_RPC_BASE_PATH"] == folder.name
        assert Path(folder.name).parent == tmp_path and Path(folder.name).name.startswith("mmhallu-vllm-")
        (Path(folder.name) / "3f2a-socket").touch()  # what the engine leaves
    assert "VLLM_RPC_BASE_PATH" not in os.environ and Path(folder.name).is_dir()  # kept while the engine runs
    folder.cleanup()  # the backend's close()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_start_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("VLLM_RPC_BASE_PATH", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(RuntimeError):
        with _own_socket_dir():
            raise RuntimeError("engine failed to start")
    assert "VLLM_RPC_BASE_PATH" not in os.environ and list(tmp_path.iterdir()) == []


def test_a_folder_the_user_chose_is_left_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("VLLM_RPC_BASE_PATH", str(tmp_path))
    with _own_socket_dir() as folder:
        assert folder is None and os.environ["VLLM_RPC_BASE_PATH"] == str(tmp_path)
    assert os.environ["VLLM_RPC_BASE_PATH"] == str(tmp_path) and tmp_path.is_dir()
