"""Splitting a reasoning model's answer from its <think> block."""
import pytest

from mmhallu_eval.reasoning import opens_reasoning, split_reasoning


@pytest.mark.parametrize("text,opened,answer,reasoning,unfinished", [
    ("<think>maybe a dog</think>\n\nNo", False, "No", "maybe a dog", False),
    ("maybe a dog\n</think>\n\nYes.", True, "Yes.", "maybe a dog", False),  # the prompt opened the block
    ("<think>a</think>b</think>No", False, "No", "a</think>b", False),       # the last close ends the reasoning
    ("<think>still thinking about the dog", False, "", "still thinking about the dog", True),
    ("still thinking", True, "", "still thinking", True),                   # opened by the prompt, never closed
    ("No, there is no dog.", False, "No, there is no dog.", None, False),   # not a reasoning model
    ("", True, "", "", True),
])
def test_split_reasoning(text, opened, answer, reasoning, unfinished):
    split = split_reasoning(text, opened)
    assert (split.answer, split.reasoning, split.unfinished) == (answer, reasoning, unfinished)


def test_opens_reasoning():
    assert opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not opens_reasoning("<|im_start|>assistant\n")
    assert not opens_reasoning("<think>x</think><|im_start|>assistant\n")
