"""What the harness prints to a terminal carries text it did not write: a server's error message, a file or sample id
from a downloaded dataset, a plugin's exception. Control characters in such text can move the cursor, rewrite the
line above, retitle the window or set the clipboard (OSC 52), and bidirectional overrides can reorder what is shown;
every line the harness prints passes through `printable`, which shows them as escapes instead."""
from __future__ import annotations

import re
import sys

#: C0 controls but tab and newline, DEL, C1 controls (0x9b starts a sequence as ESC [ does), and the bidirectional
#: embeddings, overrides and isolates
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with each unsafe character written as its Python escape (`\\x1b`, `\\u202e`); everything else as is."""
    return _UNSAFE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def warn(line: str) -> None:
    """A `note:`/`warning:` line on stderr from code below the command layer, shown as `printable` shows it."""
    print(printable(line), file=sys.stderr)
