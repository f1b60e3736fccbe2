"""Gemma 3 (SigLIP tower, pooled to a fixed token count; the template writes BOS and so does the tokenizer) and
PaliGemma (no chat template: the processor builds the documented `<image>…<bos>prompt\\n` format itself)."""
from __future__ import annotations

from pathlib import Path

from .common import Tokens, family_tokenizer, ids, save, text_config

#: Gemma's vocabulary has runs of one to four newlines as single tokens (vLLM's Gemma 3 processor looks them up)
NEWLINES = ("\n", "\n\n", "\n\n\n", "\n\n\n\n")
GEMMA3_TOKENS = Tokens(bos="<bos>", eos="<eos>", pad="<pad>", add_bos=True, special=("<start_of_turn>", "<end_of_turn>"),
                       named={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"},
                       plain=NEWLINES)
#: google/gemma-3-*-it: starts with {{ bos_token }}; the assistant role is "model"
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' }}{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<start_of_image>' }}{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
_SIGLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}


def build_gemma3(out: Path, seed: int = 0) -> Path:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor, Gemma3TextConfig

    tok = family_tokenizer(GEMMA3_TOKENS, GEMMA3_TEMPLATE)
    text = text_config(Gemma3TextConfig, tok, sliding_window=64, layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=32)
    boi, eoi, image = ids(tok, "<start_of_image>", "<end_of_image>", "<image_soft_token>")
    config = Gemma3Config(text_config=text.to_dict(), vision_config=_SIGLIP, mm_tokens_per_image=4, boi_token_index=boi, eoi_token_index=eoi,
                          image_token_index=image, tie_word_embeddings=False)
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32}, do_pan_and_scan=False)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tok, image_seq_length=4, chat_template=GEMMA3_TEMPLATE)
    return save(out, Gemma3ForConditionalGeneration, config, processor, tok, seed)


PALIGEMMA_TOKENS = Tokens(bos="<bos>", eos="<eos>", pad="<pad>", add_bos=True, named={"image_token": "<image>"}, plain=NEWLINES)


def build_paligemma(out: Path, seed: int = 0) -> Path:
    """As published: no chat template at all."""
    from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessorPil

    tok = family_tokenizer(PALIGEMMA_TOKENS, None)
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)  # adds the <loc…>/<seg…> tokens
    text = text_config(GemmaConfig, tok, vocab_size=len(tok))
    config = PaliGemmaConfig(vision_config={**_SIGLIP, "projection_dim": 64}, text_config=text.to_dict(), image_token_index=ids(tok, "<image>")[0],
                             projection_dim=64, hidden_size=64, vocab_size=len(tok), tie_word_embeddings=False)
    return save(out, PaliGemmaForConditionalGeneration, config, processor, tok, seed)
