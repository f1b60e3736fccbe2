"""One redaction for everything the harness writes about a run (manifest, result.json, judge records): passwords and
user names in URLs, secret-looking query parameters, values of secret-looking options, and strings shaped like API
keys become `***`. Model outputs are data and are never rewritten; this applies to configuration and metadata."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
#: last words of option or parameter names whose values are secrets (`api_key`, `token`, …); a `key` counts only as
#: `api/access/secret/private/auth key` (CHAIR's `caption_key` names a field), and the `-env` forms name a variable
SECRET_WORDS = {"token", "secret", "password", "passwd", "credential", "credentials", "signature", "sig", "apikey", "auth"}
KEY_OWNERS = {"api", "access", "secret", "private", "auth"}
#: strings that are API keys whatever they are called (OpenAI, Anthropic, Hugging Face, GitHub, AWS, Bearer tokens)
KEY_SHAPED = re.compile(r"\b(sk-[A-Za-z0-9_\-]{12,}|sk-ant-[A-Za-z0-9_\-]{12,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|Bearer\s+[A-Za-z0-9._\-]{12,})")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>]+")


def _secret_name(name: str) -> bool:
    parts = [p for p in re.split(r"[_\-.]+", name.lower().lstrip("-")) if p]
    if not parts or parts[-1] == "env":
        return False
    return parts[-1] in SECRET_WORDS or parts[-1] == "key" and (len(parts) == 1 or parts[-2] in KEY_OWNERS)


def redact_url(url: str) -> str:
    """The URL without user info and with secret-looking query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return KEY_SHAPED.sub(MASK, url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _secret_name(k) else v) for k, v in pairs], safe="*")
    return KEY_SHAPED.sub(MASK, urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_text(text: str) -> str:
    return KEY_SHAPED.sub(MASK, _URL.sub(lambda m: redact_url(m.group(0)), text))


def redact(value: Any, name: str = "") -> Any:
    """A copy of `value` (dicts, lists, strings) with secrets masked; `name` is the key the value sits under."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, name) for v in value)
    if isinstance(value, str):
        if name and _secret_name(name) and value:
            return MASK
        return redact_text(value)
    return value


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with the values of secret-looking options masked, and URLs and key-shaped words redacted."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        name = arg.split("=", 1)[0]
        if arg.startswith("--") and _secret_name(name):
            if "=" in arg:
                out.append(f"{name}={MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        if arg.startswith("--task-arg") or "=" in arg and "." in arg.split("=", 1)[0]:
            key, sep, value = arg.partition("=")
            if sep and _secret_name(key.rsplit(".", 1)[-1]):
                out.append(f"{key}={MASK}")
                continue
        out.append(redact_text(arg))
    return out
