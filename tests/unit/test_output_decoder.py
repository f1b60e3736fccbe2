"""Generated token ids are decoded the same way by every local engine: padding dropped and not counted, special
tokens skipped, whitespace stripped."""
from __future__ import annotations

import pytest

from mmhallu_eval.backends.base import OutputDecoder
from mmhallu_eval.world.tiny_models import BASE_SPECIAL, build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(BASE_SPECIAL)


def test_padding_is_dropped_and_special_tokens_skipped(tokenizer) -> None:
    words = tokenizer.encode(" a red car", add_special_tokens=False)
    pad, end = tokenizer.convert_tokens_to_ids(["<pad>", "<|im_end|>"])
    tokenizer.pad_token = "<pad>"
    decode = OutputDecoder(tokenizer)
    assert decode([pad, pad, *words, end, pad]) == ("a red car", len(words) + 1)


def test_the_same_text_as_the_tokenizer_skipping_special_tokens(tokenizer) -> None:
    tokenizer.pad_token = "<pad>"
    decode = OutputDecoder(tokenizer)
    ids = tokenizer.encode("<|im_start|> is there a dog? <image> yes <|endoftext|>", add_special_tokens=False)
    text, n = decode(ids)
    assert text == tokenizer.decode(ids, skip_special_tokens=True).strip()
    assert n == len(ids)


def test_a_tokenizer_without_padding_keeps_every_token(tokenizer) -> None:
    tokenizer.pad_token = None
    decode = OutputDecoder(tokenizer)
    ids = tokenizer.encode(" two cats", add_special_tokens=False)
    assert decode(ids) == ("two cats", len(ids))
