"""SQLite response cache: the resume mechanism. Keyed by model fingerprint + request hash + generation config,
committed after every batch (every group a streaming backend finishes) so a killed run loses at most what was in
flight."""
from __future__ import annotations

import hashlib
import sqlite3
import time
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from .data import image_digest
from .errors import UserError
from .files import json_encoder
from .types import GenerationConfig, Request, Response


#: `json.dumps(..., sort_keys=True, ensure_ascii=False)` and `json.dumps(..., ensure_ascii=False)`, each encoder built
#: once: keys and checksums are made for every request
_encode_sorted = json_encoder(sort_keys=True)
_encode = json_encoder()


def request_key(model_fingerprint: str, request: Request, digests: list[str] | None = None) -> str:
    """Stable hash of what determines a response: model, chat messages, image contents (`digests`, the images'
    `image_digest`s, when the caller has them), decoding settings. The hashed text is
    `json.dumps({"model", "messages", "images", "generation"}, sort_keys=True, ensure_ascii=False)`, written out
    member by member in sorted order (the generation settings' and the model's parts once each)."""
    images = [image_digest(im) for im in request.images] if digests is None else digests
    text = (f'{{"generation": {_generation_json(request.generation)}, "images": {_encode(images)}, '
            f'"messages": {_encode_sorted(request.messages)}, "model": {_fingerprint_json(model_fingerprint)}}}')
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=64)
def _generation_json(generation: GenerationConfig) -> str:
    return _encode_sorted(generation.to_dict())


@lru_cache(maxsize=16)
def _fingerprint_json(model_fingerprint: str) -> str:
    return _encode(model_fingerprint)


class CacheError(UserError):
    """The cache file cannot be trusted or written; the message names it and what to do."""


SCHEMA = 2
_TABLE = ("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, n_output_tokens INTEGER, created REAL NOT NULL, "
          "n_prompt_tokens INTEGER, checksum TEXT NOT NULL)")


def checksum(key: str, text: str, n_output: int | None, n_prompt: int | None) -> str:
    """What a cached value must hash to: an edited or corrupted row is never served as if the model said it."""
    return hashlib.sha256(_encode([key, text, n_output, n_prompt]).encode()).hexdigest()[:32]


class ResponseCache:
    """Successful responses only (failures are retried on the next run), each with its checksum. A file that is not
    this cache, is corrupt, or holds an edited row is an error naming the file, never a silent answer."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, timeout=60)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # a commit survives the process being killed without waiting for the disk (no fsync per batch); only a
            # power loss or OS crash can roll back the last commits, whose responses a rerun generates again
            self._conn.execute("PRAGMA synchronous=NORMAL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and (tables != {"responses"} or version != SCHEMA):
                raise CacheError(f"{self.path} is not a response cache of this version (tables {sorted(tables)}, schema {version}); "
                                 "rerun with --rebuild-cache to start it afresh")
            self._conn.execute(_TABLE)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA}")
            self._conn.commit()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    def _error(self, exc: sqlite3.Error) -> CacheError:
        text = str(exc)
        if "full" in text:
            return CacheError(f"{self.path}: the disk is full ({text}); free space and rerun (finished responses are kept)")
        return CacheError(f"{self.path} cannot be read as a response cache ({text}); rerun with --rebuild-cache to start it afresh")

    @staticmethod
    def remove(path: str | Path) -> None:
        """Delete a cache file and its write-ahead log (--rebuild-cache)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
        out: dict[str, Response] = {}
        try:
            if not self._conn.execute("SELECT EXISTS (SELECT 1 FROM responses)").fetchone()[0]:
                return out  # a new run's cache: nothing to look up
            keys = list(dict.fromkeys(keys))
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                rows = self._conn.execute(
                    f"SELECT key, text, n_output_tokens, n_prompt_tokens, checksum FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for key, text, n_tok, n_prompt, check in rows:
                    if check != checksum(key, text, n_tok, n_prompt):
                        raise CacheError(f"{self.path}: the cached response {key[:12]}… does not match its checksum (edited or corrupt); "
                                         "rerun with --rebuild-cache to regenerate the responses")
                    out[key] = Response(id="", text=text, n_output_tokens=n_tok, n_prompt_tokens=n_prompt, cached=True)
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        return out

    def put_many(self, items: Iterable[tuple[str, Response]]) -> None:
        now = time.time()
        rows = [(k, r.text, r.n_output_tokens, now, r.n_prompt_tokens, checksum(k, r.text, r.n_output_tokens, r.n_prompt_tokens))
                for k, r in items if r.error is None]
        try:
            with self._conn:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO responses (key, text, n_output_tokens, created, n_prompt_tokens, checksum) VALUES (?, ?, ?, ?, ?, ?)", rows
                )
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
