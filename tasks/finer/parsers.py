"""FINER answer parsers. `finer-official` takes the first A–E letter anywhere in the text, as the official
evaluation does ("The answer is B" → E, from the 'e' of "The")."""
from __future__ import annotations

import re

from mmhallu_eval import Parser

_ANY_LETTER = re.compile(r"[A-Ea-e]")
_STANDALONE = re.compile(r"^\s*\(?([A-E])\)?\s*$")


def _index(letter: str) -> int:
    return ord(letter.upper()) - ord("A")


def finer_official(text: str) -> int | None:
    """Index (A → 0) of the first character matching [A-Ea-e]; None when there is none (wrong)."""
    m = _ANY_LETTER.search(text)
    return _index(m.group(0)) if m else None


def letter_strict(text: str) -> int | None:
    """Only a standalone capital letter, optionally in parentheses: "B", "(B)"; anything else is unanswered."""
    m = _STANDALONE.match(text)
    return _index(m.group(1)) if m else None


PARSERS = {
    "finer-official": Parser("finer-official", "1", finer_official, "first [A-Ea-e] character anywhere"),
    "letter-strict": Parser("letter-strict", "1", letter_strict, "a standalone capital letter, optionally in parentheses"),
}
