"""Data parallelism: N replicas of any backend as Ray actors, on this node (`ray.init()` local) or on an existing
cluster (`--ray-address auto`). Each generate call is cut into N contiguous shards and the answers are put back
in request order, so samples.jsonl, the cache keys (the replicas' shared fingerprint) and the results are those
of a single-replica run."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..data import open_image
from ..types import Request, Response
from .base import Backend, BackendError, create_backend


class _Replica:
    """Runs inside a Ray actor: one backend instance for the actor's lifetime."""

    def __init__(self, backend: str, kwargs: dict[str, Any]):
        from ..heap import tune_malloc

        tune_malloc()  # the actor's process is this backend's alone, as the `mmhallu` command's own process is
        self.backend = create_backend(backend, **kwargs)

    def info(self) -> dict[str, Any]:
        import socket

        return {"fingerprint": self.backend.fingerprint(), "describe": self.backend.describe(),
                "default_batch_size": self.backend.default_batch_size, "opens_reasoning": self.backend.opens_reasoning,
                "host": socket.gethostname()}

    def generate(self, requests: list[Request]) -> list[Response]:
        return self.backend.generate(requests)

    def close(self) -> None:
        self.backend.close()


def shard(items: list[Any], n: int) -> list[list[Any]]:
    """n contiguous, near-equal slices (earlier slices take the remainder), concatenating back to `items`."""
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for k in range(n):
        end = start + size + (1 if k < extra else 0)
        out.append(items[start:end])
        start = end
    return out


class DataParallelBackend(Backend):
    name = "data-parallel"

    def __init__(self, backend: str, replicas: int, ray_address: str | None = None, gpus_per_replica: float | None = None,
                 cpus_per_replica: float = 1, **kwargs: Any):
        if replicas < 1:
            raise BackendError(f"--data-parallel must be at least 1 (got {replicas})")
        try:
            import ray
        except ImportError as exc:
            raise BackendError("--data-parallel and --ray-address need Ray: pip install 'mmhallu-eval[ray]'") from exc
        self._ray = ray
        self._own_ray = not ray.is_initialized()
        if self._own_ray:
            try:
                ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BackendError(f"could not connect to the Ray cluster at {ray_address!r}: {exc}. Start one with "
                                   "`ray start --head` or leave out --ray-address to run the replicas on this machine.") from exc
        if gpus_per_replica is None:  # a vLLM replica takes its tensor-parallel group; others one GPU when there are GPUs
            has_gpus = ray.cluster_resources().get("GPU", 0) > 0
            gpus_per_replica = float(kwargs.get("tensor_parallel_size", 1)) if has_gpus else 0.0
        self.remote_images = ray_address is not None  # other nodes may not see this machine's files: send pixels
        actor = ray.remote(num_cpus=cpus_per_replica, num_gpus=gpus_per_replica)(_Replica)
        self.inner = backend
        self.actors = [actor.remote(backend, kwargs) for _ in range(replicas)]
        try:
            infos = ray.get([a.info.remote() for a in self.actors])
        except Exception as exc:
            self.close()
            cause = exc.cause if hasattr(exc, "cause") and exc.cause is not None else exc
            if isinstance(cause, BackendError):
                raise BackendError(str(cause)) from exc
            raise BackendError(f"a {backend} replica failed to start: {type(cause).__name__}: {cause}") from exc
        prints = {i["fingerprint"] for i in infos}
        if len(prints) != 1:
            self.close()
            raise BackendError(f"the {replicas} replicas loaded different models (fingerprints {sorted(prints)}); "
                               "on a cluster every node must see the same model files")
        self._info = infos[0]
        self.opens_reasoning = bool(infos[0]["opens_reasoning"])
        self.hosts = [i["host"] for i in infos]
        inner_batch = infos[0]["default_batch_size"]
        self.default_batch_size = inner_batch * replicas if inner_batch else None

    def fingerprint(self) -> str:
        return str(self._info["fingerprint"])

    def describe(self) -> dict[str, Any]:
        return {**self._info["describe"], "data_parallel": len(self.actors), "replica_hosts": sorted(set(self.hosts))}

    def generate(self, requests: list[Request]) -> list[Response]:
        if self.remote_images:
            requests = [replace(r, images=[open_image(im) for im in r.images]) for r in requests]
        parts = [p for p in shard(requests, len(self.actors)) if p]
        futures = [a.generate.remote(p) for a, p in zip(self.actors, parts)]
        return [resp for part in self._ray.get(futures) for resp in part]

    def close(self) -> None:
        for a in getattr(self, "actors", []):
            try:
                self._ray.get(a.close.remote(), timeout=60)
            except Exception:  # a replica that died has nothing left to release
                pass
            self._ray.kill(a)
        self.actors = []
        if getattr(self, "_own_ray", False) and self._ray.is_initialized():
            self._ray.shutdown()
