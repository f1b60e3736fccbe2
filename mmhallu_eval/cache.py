"""SQLite response cache: the resume mechanism. Keyed by model fingerprint + request hash + generation config,
committed after every batch so a killed run loses at most the batch in flight."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable

from .data import image_digest
from .types import Request, Response


def request_key(model_fingerprint: str, request: Request) -> str:
    """Stable hash of what determines a response: model, chat messages, image contents, decoding settings."""
    payload = {
        "model": model_fingerprint,
        "messages": request.messages,
        "images": [image_digest(im) for im in request.images],
        "generation": request.generation.to_dict(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    """Successful responses only: failures are retried on the next run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "n_output_tokens INTEGER, created REAL NOT NULL, n_prompt_tokens INTEGER)"
        )
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(responses)")}
        if "n_prompt_tokens" not in columns:  # a cache written before prompt lengths were recorded
            self._conn.execute("ALTER TABLE responses ADD COLUMN n_prompt_tokens INTEGER")
        self._conn.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, Response]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, Response] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = self._conn.execute(
                f"SELECT key, text, n_output_tokens, n_prompt_tokens FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            for key, text, n_tok, n_prompt in rows:
                out[key] = Response(id="", text=text, n_output_tokens=n_tok, n_prompt_tokens=n_prompt, cached=True)
        return out

    def put_many(self, items: Iterable[tuple[str, Response]]) -> None:
        now = time.time()
        rows = [(k, r.text, r.n_output_tokens, now, r.n_prompt_tokens) for k, r in items if r.error is None]
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO responses (key, text, n_output_tokens, created, n_prompt_tokens) VALUES (?, ?, ?, ?, ?)", rows
            )

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
