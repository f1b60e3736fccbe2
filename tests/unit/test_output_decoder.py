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


def test_a_reasoning_delimiter_that_is_a_special_token_is_kept() -> None:
    """Gemma 4 reasons in `<|channel>thought\\n…<channel|>`, both special tokens: skipped like the others, the
    reasoning would run into the answer ("thought\\nmaybe a dogNo") and no parser could tell them apart."""
    from mmhallu_eval.reasoning import split_reasoning
    from mmhallu_eval.world.families.common import family_tokenizer
    from mmhallu_eval.world.families.gemma import GEMMA4_TOKENS

    tokenizer = family_tokenizer(GEMMA4_TOKENS, None)
    decode = OutputDecoder(tokenizer)
    ids = tokenizer.encode("<|channel>thought\nmaybe a dog<channel|>No<turn|>", add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "thought\nmaybe a dogNo"
    text, n = decode([*ids, tokenizer.pad_token_id])
    assert (text, n) == ("<|channel>thought\nmaybe a dog<channel|>No", len(ids))
    assert split_reasoning(text).answer == "No" and split_reasoning(text).reasoning == "maybe a dog"
    # other special tokens are still skipped, and text without a delimiter decodes as before
    plain = tokenizer.encode("<|turn>a red car<turn|>", add_special_tokens=False)
    assert decode(plain) == (tokenizer.decode(plain, skip_special_tokens=True).strip(), len(plain))
