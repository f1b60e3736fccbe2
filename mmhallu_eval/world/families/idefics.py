"""Idefics3 and SmolVLM: a SigLIP-style tower with pixel shuffle, images written as `<fake_token_around_image>
<global-img><image>…` runs, "User:" / "Assistant:" turns ending in <end_of_utterance>."""
from __future__ import annotations

from pathlib import Path

from ...backends.hf_processor import image_only
from .common import Tokens, family_tokenizer, ids, save, text_config

_IMAGE_TOKENS = ("<fake_token_around_image>", "<global-img>", "<image>", "<end_of_utterance>") + tuple(
    f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5)
)
IDEFICS3_TOKENS = Tokens(bos="<|begin_of_text|>", eos="<end_of_utterance>", pad="<|finetune_right_pad_id|>", add_bos=True, special=_IMAGE_TOKENS)
SMOLVLM_TOKENS = Tokens(bos="<|im_start|>", eos="<end_of_utterance>", pad="<|im_end|>", special=_IMAGE_TOKENS + ("<video>",))


def _template(prefix: str) -> str:
    """HuggingFaceM4/Idefics3-8B-Llama3 and HuggingFaceTB/SmolVLM-*-Instruct share this shape; only the prefix differs."""
    return (
        prefix + "{% for message in messages %}{{ message['role'] | capitalize }}"
        "{% if message['content'] is string %}{{ ': ' + message['content'] }}{% else %}"
        "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
        "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}"
        "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
    )


IDEFICS3_TEMPLATE = _template("<|begin_of_text|>")
SMOLVLM_TEMPLATE = _template("<|im_start|>")
_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}


def build_idefics3(out: Path, seed: int = 0) -> Path:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor, LlamaConfig

    tok = family_tokenizer(IDEFICS3_TOKENS, IDEFICS3_TEMPLATE)
    config = Idefics3Config(vision_config=_VISION, text_config=text_config(LlamaConfig, tok).to_dict(), image_token_id=ids(tok, "<image>")[0],
                            scale_factor=2, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4, chat_template=IDEFICS3_TEMPLATE)
    return save(out, Idefics3ForConditionalGeneration, config, processor, tok, seed)


def build_smolvlm(out: Path, seed: int = 0) -> Path:
    from transformers import LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessorPil, SmolVLMProcessor

    tok = family_tokenizer(SMOLVLM_TOKENS, SMOLVLM_TEMPLATE)
    # as in the published checkpoints, an image's tokens ((32 / 4)² / 2² = 16) are a multiple of the tower's patch size
    # (4): transformers 5.20 cuts the image features into blocks of the patch size
    config = SmolVLMConfig(vision_config={**_VISION, "patch_size": 4}, text_config=text_config(LlamaConfig, tok).to_dict(),
                           image_token_id=ids(tok, "<image>")[0], scale_factor=2, tie_word_embeddings=False)
    image_processor = SmolVLMImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    processor = image_only(SmolVLMProcessor)(image_processor, tok, None, image_seq_len=16, chat_template=SMOLVLM_TEMPLATE)
    return save(out, SmolVLMForConditionalGeneration, config, processor, tok, seed, {"video_processor_type": "SmolVLMVideoProcessor"})
