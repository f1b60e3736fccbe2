"""Rows of another tool's file matched to the questions in --data by what a row says about its question (a key), not
by the tool's own numbering."""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from pathlib import Path

from ..errors import TaskError
from ..scoring import AnswerMatch
from ..types import Sample


def covered(samples: list[Sample], covers: Callable[[Sample], bool] | None, why: str, who: str, match: AnswerMatch) -> list[Sample]:
    """The samples a peer's dataset holds; when it leaves some out, a note in `match` says how many and why."""
    held = [s for s in samples if covers is None or covers(s)]
    if len(held) < len(samples):
        match.notes.append(f"{who} holds {len(held)} of the {len(samples)} questions in --data ({why}); the others are not scored")
    return held


class KeyJoin:
    """The samples by key; a question a dataset asks twice word for word (AMBER repeats ten) is taken once per row, in
    file order, so identical questions each get one answer. Rows whose key no sample has, or whose samples are all
    taken, are counted in the AnswerMatch as unknown or duplicate answers."""

    def __init__(self, samples: Iterable[Sample], key: Callable[[Sample], Hashable], match: AnswerMatch) -> None:
        self._by_key: dict[Hashable, list[Sample]] = {}
        for s in samples:
            self._by_key.setdefault(key(s), []).append(s)
        self._taken: dict[Hashable, int] = {}
        self._match = match
        self._first_unknown = ""

    def take(self, key: Hashable, ref: str, where: str) -> Sample | None:
        """The next sample with this key; None (and the row counted under `ref`) when there is none left."""
        found = self._by_key.get(key)
        if found is None:
            self._match.unknown.append(f"{ref} {key}")
            self._first_unknown = self._first_unknown or f"{where}: {key}"
            return None
        n = self._taken.get(key, 0)
        self._taken[key] = n + 1
        if n >= len(found):
            self._match.duplicates.append(ref)
            return None
        return found[n]

    def require_any(self, path: Path, rows: str, tool: str, name: str) -> None:
        """A file none of whose `rows` is a question in --data is the wrong file, not a file of unknown answers."""
        if not self._taken:
            raise TaskError(f"{path}: none of its {rows} is a question in --data (first: {self._first_unknown}); pass the question files the "
                            f"{tool} run used ({name})")
