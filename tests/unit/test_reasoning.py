"""Splitting a reasoning model's answer from its reasoning block: `<think>…</think>`, Gemma 4's
`<|channel>thought\n…<channel|>`."""
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
    ("<|channel>thought\nmaybe a dog<channel|>No", False, "No", "maybe a dog", False),  # Gemma 4, its channel name left out
    ("<|channel>thought\nstill thinking", False, "", "still thinking", True),
    ("<|channel>thought\n<channel|>Yes", False, "Yes", "", False),                     # an empty channel
])
def test_split_reasoning(text, opened, answer, reasoning, unfinished):
    split = split_reasoning(text, opened)
    assert (split.answer, split.reasoning, split.unfinished) == (answer, reasoning, unfinished)


def test_opens_reasoning():
    assert opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not opens_reasoning("<|im_start|>assistant\n")
    assert not opens_reasoning("<think>x</think><|im_start|>assistant\n")
    assert not opens_reasoning("<|turn>model\n<|channel>thought\n<channel|>")  # Gemma 4, thinking off: written closed
    assert opens_reasoning("<|turn>model\n<|channel>thought\n")


def test_template_args_read_json_values_and_refuse_what_is_not_a_name():
    import pytest
    import typer

    from mmhallu_eval.cli.common import parse_template_args

    assert parse_template_args(["enable_thinking=false", "budget=256", "system=Be brief.", "tags=[\"a\"]", 'quoted="x"']) == {
        "enable_thinking": False, "budget": 256, "system": "Be brief.", "tags": ["a"], "quoted": "x"}
    for bad in (["enable thinking=false"], ["enable_thinking"], ["a=1", "a=2"]):
        with pytest.raises(typer.Exit):
            parse_template_args(bad)
