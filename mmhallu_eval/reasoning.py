"""Reasoning models (Qwen3-VL-Thinking, GLM-4.1V-Thinking, Kimi-VL-Thinking) write `<think>…</think>` before the
answer. Parsers must read the answer, not the reasoning: `strip` splits them (the raw text stays in samples.jsonl),
`keep` parses the raw text. A reasoning block that never closes has no answer: the sample is not scored."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reasoning = Literal["strip", "keep"]
REASONING_MODES: tuple[str, ...] = ("strip", "keep")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
UNFINISHED = "unfinished_reasoning"


@dataclass(frozen=True)
class Split:
    answer: str
    reasoning: str | None = None
    unfinished: bool = False


def split_reasoning(text: str, opened: bool = False) -> Split:
    """The answer after the last `</think>`; `opened` says the prompt itself opened the block (the template's
    generation prompt ends in `<think>`), so an answer with no `</think>` is all reasoning."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        head = text[:close]
        start = head.find(THINK_OPEN)
        reasoning = head[start + len(THINK_OPEN):] if start >= 0 else head
        return Split(text[close + len(THINK_CLOSE):].strip(), reasoning.strip())
    if opened or THINK_OPEN in text:
        return Split("", text.split(THINK_OPEN, 1)[-1].strip(), unfinished=True)
    return Split(text)


def opens_reasoning(generation_prompt: str) -> bool:
    """Whether a rendered generation prompt leaves a `<think>` block open for the model to close."""
    return generation_prompt.rfind(THINK_OPEN) > generation_prompt.rfind(THINK_CLOSE)
