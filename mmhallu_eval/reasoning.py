"""Reasoning models write their reasoning before the answer: Qwen3-VL-Thinking, Qwen3.5, GLM-4.1V-Thinking and
Kimi-VL-Thinking in `<think>…</think>`, Gemma 4 (with `enable_thinking`) in `<|channel>thought\\n…<channel|>`. Parsers
must read the answer, not the reasoning: `strip` splits them (the raw text stays in samples.jsonl), `keep` parses the
raw text. A reasoning block that never closes has no answer: the sample is not scored."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reasoning = Literal["strip", "keep"]
REASONING_MODES: tuple[str, ...] = ("strip", "keep")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
#: Gemma 4's delimiters are special tokens, which decoding would drop (local backends keep these: OutputDecoder)
CHANNEL_OPEN, CHANNEL_CLOSE = "<|channel>", "<channel|>"
#: the (opening, closing) delimiters of a reasoning block, as decoded text
BLOCKS: tuple[tuple[str, str], ...] = ((THINK_OPEN, THINK_CLOSE), (CHANNEL_OPEN, CHANNEL_CLOSE))
#: the name Gemma 4 writes after `<|channel>` for its reasoning channel
CHANNEL_NAME = "thought"
UNFINISHED = "unfinished_reasoning"


@dataclass(frozen=True)
class Split:
    answer: str
    reasoning: str | None = None
    unfinished: bool = False


def _reasoning_text(text: str, opening: str) -> str:
    """What follows `opening` in `text` (all of it where the prompt opened the block), without Gemma 4's channel name."""
    start = text.find(opening)
    body = text[start + len(opening):] if start >= 0 else text
    if opening == CHANNEL_OPEN and body.startswith(CHANNEL_NAME):
        body = body[len(CHANNEL_NAME):]
    return body.strip()


def split_reasoning(text: str, opened: bool = False) -> Split:
    """The answer after the last closing delimiter; `opened` says the prompt itself opened the block (the template's
    generation prompt ends in `<think>`), so an answer with no closing delimiter is all reasoning."""
    close, (opening, closing) = max((text.rfind(pair[1]), pair) for pair in BLOCKS)
    if close >= 0:
        return Split(text[close + len(closing):].strip(), _reasoning_text(text[:close], opening))
    started = [opening for opening, _ in BLOCKS if opening in text]
    if opened or started:
        return Split("", _reasoning_text(text, started[0] if started else THINK_OPEN), unfinished=True)
    return Split(text)


def opens_reasoning(generation_prompt: str) -> bool:
    """Whether a rendered generation prompt leaves a reasoning block open for the model to close."""
    return any(generation_prompt.rfind(opening) > generation_prompt.rfind(closing) for opening, closing in BLOCKS)
