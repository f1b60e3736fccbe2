"""Rows of another tool's file matched to the questions in --data by what a row says about its question (a key), not
by the tool's own numbering."""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from ..types import Sample

#: `KeyJoin.take` of a key whose questions have all been taken already
REPEATED = object()


class KeyJoin:
    """The samples by key; a question a dataset asks twice word for word (AMBER repeats ten) is taken once per row, in
    file order, so identical questions each get one answer."""

    def __init__(self, samples: Iterable[Sample], key: Callable[[Sample], Hashable]) -> None:
        self._by_key: dict[Hashable, list[Sample]] = {}
        for s in samples:
            self._by_key.setdefault(key(s), []).append(s)
        self._taken: dict[Hashable, int] = {}

    def take(self, key: Hashable) -> Sample | object | None:
        """The next sample with this key; None when no sample has it, REPEATED when every one was taken."""
        found = self._by_key.get(key)
        if found is None:
            return None
        n = self._taken.get(key, 0)
        self._taken[key] = n + 1
        return found[n] if n < len(found) else REPEATED

    @property
    def any_taken(self) -> bool:
        return bool(self._taken)
