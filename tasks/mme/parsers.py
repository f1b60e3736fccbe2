"""MME answer parsers. `mme-official` reproduces eval_tool/calculation.py's parse_pred_ans."""
from __future__ import annotations

import re

from mmhallu_eval import Parser


def mme_official(text: str) -> str:
    """Lower-case; exactly yes/no is taken; otherwise only the first 4 characters are looked at:
    'yes' in them → yes, else 'no' in them → no, else other (wrong). "Not really" → no; "There is no dog" → other."""
    pred = text.lower()
    if pred in ("yes", "no"):
        return pred
    prefix = pred[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


_STRICT = re.compile(r"^[\s\"'*(\[]*(yes|no)\b", re.IGNORECASE)


def strict(text: str) -> str:
    """Only a leading yes/no word counts; anything else is other."""
    m = _STRICT.match(text)
    return m.group(1).lower() if m else "other"


PARSERS = {
    "mme-official": Parser("mme-official", "1", mme_official, "MME calculation.py parse_pred_ans"),
    "strict": Parser("strict", "1", strict, "leading yes/no word only; anything else is other"),
}
