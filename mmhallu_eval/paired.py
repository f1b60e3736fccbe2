"""Paired-question machinery shared by MME (two questions per image) and FINER (a positive query and its
fine-grained negative): grouping records into units, validating them, and unit-level accuracy."""
from __future__ import annotations

from typing import Any, Callable, Hashable, Iterable

from .errors import TaskError

Record = dict[str, Any]


def group_units(
    records: Iterable[Record],
    key: Callable[[Record], Hashable],
    size: int | None = 2,
    describe: Callable[[Hashable], str] = str,
    validate: Callable[[Hashable, list[Record]], str | None] | None = None,
) -> dict[Hashable, list[Record]]:
    """Records grouped by `key`, in first-seen order; every unit must hold exactly `size` records (None: any).

    `validate(key, members)` may return an error message for a unit (e.g. two positives in a FINER pair).
    """
    units: dict[Hashable, list[Record]] = {}
    for r in records:
        units.setdefault(key(r), []).append(r)
    for k, members in units.items():
        if size is not None and len(members) != size:
            ids = ", ".join(str(m.get("id")) for m in members)
            raise TaskError(f"{describe(k)}: expected {size} questions, found {len(members)} (ids: {ids})")
        if validate is not None:
            problem = validate(k, members)
            if problem:
                raise TaskError(f"{describe(k)}: {problem}")
    return units


def unit_accuracy(units: dict[Hashable, list[Record]]) -> float | None:
    """Share of units whose questions are all correct (MME acc+, FINER paired accuracy)."""
    if not units:
        return None
    return sum(all(bool(r["correct"]) for r in members) for members in units.values()) / len(units)


def keep_whole_units(items: list[Any], unit_of: Callable[[Any], Hashable], limit: int) -> list[Any]:
    """The first `limit` items, extended so that the last unit is not cut in half."""
    if limit >= len(items):
        return items
    kept = items[:limit]
    last = unit_of(kept[-1]) if kept else None
    for item in items[limit:]:
        if unit_of(item) != last:
            break
        kept.append(item)
    wanted = {unit_of(i) for i in kept}
    # members of a kept unit that appear later in the list (non-consecutive data) come along too
    return kept + [i for i in items[len(kept):] if unit_of(i) in wanted]
