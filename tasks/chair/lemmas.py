"""WordNet lemmas kept between runs. Loading NLTK's WordNet reader takes seconds (it reads every index file, scans
the adjective data and maps sense keys) while CHAIR looks up a few thousand (word, part of speech) pairs; the pairs
seen are stored in the cache folder, keyed by a checksum of the WordNet data and the NLTK version, and WordNet is
loaded only when a pair is new. The lemmas are NLTK's own, so the scores are unchanged."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from mmhallu_eval import atomic_write_json, cache_root, read_json


@lru_cache(maxsize=1)
def wordnet_key() -> str:
    """Checksum of the WordNet files NLTK would load (zip or folder) and of the NLTK version."""
    import nltk

    h = hashlib.sha256(nltk.__version__.encode())
    try:  # where NLTK's corpus loader looks, in its order: inside a zip first, then a folder
        found = nltk.data.find("corpora/wordnet.zip/wordnet/")
    except LookupError:
        found = nltk.data.find("corpora/wordnet")
    path = Path(str(getattr(found, "path", found))).resolve()
    zip_path = getattr(found, "zipfile", None)
    if zip_path is not None:
        path = Path(zip_path.filename)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()[:20]


class Lemmas:
    """(word, pos) → lemma, from the stored table first and NLTK's WordNetLemmatizer (loaded on first need) after."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_root() / "chair" / f"lemmas-{wordnet_key()}.json"
        self.table: dict[str, str] = {}
        stored: Any = read_json(self.path) if self.path.is_file() else {}
        if isinstance(stored, dict):
            self.table = {k: v for k, v in stored.items() if isinstance(v, str)}
        self.new = 0
        self._wnl: Any = None

    def __call__(self, word: str, pos: str) -> str:
        key = f"{pos}\t{word}"
        lemma = self.table.get(key)
        if lemma is None:
            if self._wnl is None:
                from nltk.stem import WordNetLemmatizer

                self._wnl = WordNetLemmatizer()
            lemma = self.table[key] = self._wnl.lemmatize(word, pos=pos)
            self.new += 1
        return lemma

    def known(self, word: str, pos: str) -> str | None:
        """The stored lemma, or None (WordNet is not consulted)."""
        return self.table.get(f"{pos}\t{word}")

    def save(self) -> None:
        """Store the table when it grew (a failed write only costs the next run the WordNet load)."""
        if self.new:
            try:
                atomic_write_json(self.path, self.table)
                self.new = 0
            except OSError:
                pass
