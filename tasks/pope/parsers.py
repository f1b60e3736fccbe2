"""POPE answer parsers. `pope-official` reproduces the POPE / LLaVA evaluation rule, quirks included."""
from __future__ import annotations

import re

from mmhallu_eval import Parser


def pope_official(text: str) -> str:
    """Keep the text before the first '.', drop ',', split on single spaces; 'no' iff a word is No/no/not."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_opera(text: str) -> str:
    """OPERA's variant: strip every '.' and ','; No/not/no/NO or any word ending in n't means no."""
    words = text.replace(".", "").replace(",", "").split(" ")
    if any(w in ("No", "not", "no", "NO") or w.endswith("n't") for w in words):
        return "no"
    return "yes"


_STRICT = re.compile(r"^[\s\"'*(\[]*(yes|no)\b", re.IGNORECASE)


def strict(text: str) -> str | None:
    """Only an answer that starts with the word yes or no (any case, optional quotes/markdown) is read."""
    m = _STRICT.match(text)
    return m.group(1).lower() if m else None


PARSERS = {
    "pope-official": Parser("pope-official", "1", pope_official, "POPE/LLaVA eval_pope.py rule"),
    "pope-opera": Parser("pope-opera", "1", pope_opera, "OPERA pope_eval rule"),
    "strict": Parser("strict", "1", strict, "leading yes/no word only; anything else is unparsed"),
}
