"""The wrapper every backend runs in: cache lookup, missing-image checks, batching, per-item fallback on
failure, progress bar, and timing of the backend's own work (to measure harness overhead)."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..cache import ResponseCache, request_key
from ..data import MISSING, UnreadableImage, image_digest
from ..types import Request, Response
from .base import Backend


@dataclass
class GenerationStats:
    requested: int = 0
    cached: int = 0
    generated: int = 0
    failed: int = 0
    #: requests answered by an identical request of the same call (e.g. one question in two POPE splits)
    shared: int = 0
    backend_seconds: float = 0.0


def _digest(image: Any, named: dict[str | Path, str]) -> str:
    """`image_digest`, once per file name in a call (POPE asks six questions of each image): one `stat` serves the
    request key and the missing-image check of every request that shows it."""
    if not isinstance(image, (str, Path)):
        return image_digest(image)
    found = named.get(image)
    if found is None:
        found = named[image] = image_digest(image)
    return found


def _first_missing_image(request: Request, digests: list[str]) -> str | None:
    return next((str(im) for im, d in zip(request.images, digests) if d.startswith(MISSING)), None)


def generate_cached(
    backend: Backend,
    requests: list[Request],
    cache: ResponseCache,
    batch_size: int | None = None,
    desc: str = "generate",
    show_progress: bool = True,
    on_group: Callable[[Mapping[str, Response]], None] | None = None,
) -> tuple[dict[str, Response], GenerationStats]:
    """Responses by request id. Finished batches (groups, for a backend that streams them) are committed to the cache
    as they come; then `on_group` sees every response so far (cached ones included), so the caller can score those
    while a streaming backend's engine works on the rest. Its time is not the backend's."""
    stats = GenerationStats(requested=len(requests))
    fingerprint = backend.fingerprint()
    named: dict[str | Path, str] = {}
    digests = {r.id: [_digest(im, named) for im in r.images] for r in requests}
    keys = {r.id: request_key(fingerprint, r, digests[r.id]) for r in requests}
    hits = cache.get_many(keys.values())
    results: dict[str, Response] = {}
    todo: list[Request] = []
    twins: dict[str, list[Request]] = {}
    for r in requests:
        missing = _first_missing_image(r, digests[r.id])
        if missing:
            results[r.id] = Response(id=r.id, error=f"missing_image: {missing}")
            stats.failed += 1
        elif keys[r.id] in hits:
            results[r.id] = replace(hits[keys[r.id]], id=r.id)
            stats.cached += 1
        elif keys[r.id] in twins:
            twins[keys[r.id]].append(r)
            stats.shared += 1
        else:
            twins[keys[r.id]] = []
            todo.append(r)
    size = batch_size or backend.default_batch_size or max(len(todo), 1)
    batches = [todo[start : start + size] for start in range(0, len(todo), size)]
    pending = len(todo) + stats.shared
    # one batch prepared ahead (a single worker): its images decoded and inputs built while the current one generates
    ahead = backend.prefetch and len(batches) > 1
    with tqdm(total=len(requests), initial=len(requests) - pending, desc=desc, disable=not show_progress, unit="req") as bar, \
            (ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") if ahead else nullcontext()) as pool:
        t0 = time.perf_counter()
        next_prepared = pool.submit(backend.prepare, batches[0]) if pool is not None else None
        for k, batch in enumerate(batches):
            prepared = next_prepared
            next_prepared = pool.submit(backend.prepare, batches[k + 1]) if pool is not None and k + 1 < len(batches) else None
            # each group cached as soon as it is done; an error here (or Ctrl-C) closes the stream, which stops the engine
            with closing(_stream_with_fallback(backend, batch, prepared)) as groups:
                for responses in groups:
                    stats.backend_seconds += time.perf_counter() - t0
                    cache.put_many((keys[resp.id], resp) for resp in responses)
                    for resp in responses:
                        for twin in twins[keys[resp.id]]:
                            results[twin.id] = replace(resp, id=twin.id)
                        results[resp.id] = resp
                        if resp.error:
                            stats.failed += 1 + len(twins[keys[resp.id]])
                        else:
                            stats.generated += 1
                    bar.update(sum(1 + len(twins[keys[r.id]]) for r in responses))
                    if on_group is not None:
                        on_group(results)
                    t0 = time.perf_counter()
    return results, stats


def _stream_with_fallback(backend: Backend, batch: list[Request], prepared: Future | None = None) -> Iterator[list[Response]]:
    """The batch's responses in the groups the backend finishes them in. If the backend fails part-way, what it has
    answered stands and the rest is retried item by item, as a failing batch is."""
    if prepared is not None:
        yield _generate_with_fallback(backend, batch, prepared)
        return
    answered: set[str] = set()
    try:
        with closing(backend.generate_stream(batch)) as stream:
            for group in stream:
                answered.update(resp.id for resp in group)
                yield group
    except Exception as exc:
        if len(batch) == 1:
            if batch[0].id not in answered:
                yield [_failed(batch[0], exc)]
            return
    for r in batch:  # after a failure (or requests a stream left unanswered), the rest one at a time
        if r.id not in answered:
            yield _generate_with_fallback(backend, [r])


def _generate_with_fallback(backend: Backend, batch: list[Request], prepared: Future | None = None) -> list[Response]:
    """A failing batch (or a failing preparation of it) is retried item by item so one bad sample cannot sink its
    neighbours."""
    try:
        return backend.generate(batch) if prepared is None else backend.generate_prepared(batch, prepared.result())
    except Exception as exc:
        if len(batch) == 1:
            return [_failed(batch[0], exc)]
    return [resp for r in batch for resp in _generate_with_fallback(backend, [r])]


def _failed(request: Request, exc: Exception) -> Response:
    if isinstance(exc, UnreadableImage):
        return Response(id=request.id, error=f"image_error: {exc}")
    return Response(id=request.id, error=f"generation_error: {type(exc).__name__}: {exc}")
