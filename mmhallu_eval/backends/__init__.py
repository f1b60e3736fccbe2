"""Inference backends. Each lives in its own module, imported only when chosen (torch/vllm stay lazy)."""
from .base import BACKENDS, Backend, BackendError, create_backend, model_fingerprint

__all__ = ["BACKENDS", "Backend", "BackendError", "create_backend", "model_fingerprint"]
