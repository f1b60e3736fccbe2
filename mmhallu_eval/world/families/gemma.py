"""Gemma 3 (SigLIP tower, pooled to a fixed token count; the template writes BOS and so does the tokenizer), Gemma 4
(its own vision tower over aspect-preserving patches; turns `<|turn>…<turn|>`; reasoning in a `<|channel>thought`
block of special tokens, written closed and empty unless the template variable `enable_thinking` is set) and PaliGemma
(no chat template: the processor builds the documented `<image>…<bos>prompt\\n` format itself)."""
from __future__ import annotations

from pathlib import Path

from ...backends.hf_processor import image_only
from ...prompts import DESCRIBE
from .common import TAUGHT_PROMPTS, Tokens, family_tokenizer, ids, save, teach, text_config

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


GEMMA4_TOKENS = Tokens(bos="<bos>", eos="<eos>", pad="<pad>", add_bos=True, special=("<|turn>", "<turn|>", "<|channel>", "<channel|>", "<|think|>", "<|video|>"),
                      named={"image_token": "<|image|>", "boi_token": "<|image>", "eoi_token": "<image|>",
                             "audio_token": "<|audio|>", "boa_token": "<|audio>", "eoa_token": "<audio|>"},
                      plain=NEWLINES)
#: google/gemma-4-*-it without its tool-calling parts: BOS from the template; a system turn when there is a system
#: message or `enable_thinking` (which writes `<|think|>` first); an image is `<|image|>` in place, text is trimmed;
#: the generation prompt writes the reasoning block closed and empty unless `enable_thinking` is set
GEMMA4_TEMPLATE = (
    "{{- bos_token -}}{%- set loop_messages = messages -%}"
    "{%- if (enable_thinking is defined and enable_thinking) or messages[0]['role'] in ['system', 'developer'] -%}"
    "{{- '<|turn>system\\n' -}}{%- if enable_thinking is defined and enable_thinking -%}{{- '<|think|>\\n' -}}{%- endif -%}"
    "{%- if messages[0]['role'] in ['system', 'developer'] -%}{%- if messages[0]['content'] is string -%}{{- messages[0]['content'] | trim -}}"
    "{%- else -%}{%- for item in messages[0]['content'] -%}{{- item['text'] | trim + ' ' -}}{%- endfor -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}{%- endif -%}{{- '<turn|>\\n' -}}{%- endif -%}"
    "{%- for message in loop_messages -%}{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{- '<|turn>' + role + '\\n' -}}{%- if message['content'] is string -%}{{- message['content'] | trim -}}"
    "{%- else -%}{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{- item['text'] | trim -}}"
    "{%- elif item['type'] == 'image' -%}{{- '<|image|>' -}}{%- endif -%}{%- endfor -%}{%- endif -%}{{- '<turn|>\\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|turn>model\\n' -}}"
    "{%- if not enable_thinking | default(false) -%}{{- '<|channel>thought\\n<channel|>' -}}{%- endif -%}{%- endif -%}"
)


#: what the tiny Gemma 4 is taught to write with `enable_thinking`: its reasoning channel, closed, then the answer
GEMMA4_THINKING_REPLY = "<|channel>thought\nYes, a dog would fit here. Looking closer, it is only a shape.<channel|>No<turn|>"


def build_gemma4(out: Path, seed: int = 0) -> Path:
    """Gemma 4's layout (the audio feature extractor its processor class requires beside the image processor); the
    fewest soft tokens an image may have (70), from 8-pixel patches so that the tower stays small. Taught to reason in its
    channel and answer "No" when the template variable `enable_thinking` is set (tests `--reasoning`), and to answer
    "No" at once when it is not."""
    from transformers import (Gemma4AudioFeatureExtractor, Gemma4Config, Gemma4ForConditionalGeneration, Gemma4ImageProcessorPil,
                              Gemma4Processor, Gemma4TextConfig)

    tok = family_tokenizer(GEMMA4_TOKENS, GEMMA4_TEMPLATE)
    # as google/gemma-4-31B-it is configured: vision tokens attend to each other both ways, keys double as values,
    # soft-capped logits, partial proportional RoPE on the full-attention layers, standardized vision features
    text = text_config(Gemma4TextConfig, tok, sliding_window=64, layer_types=["sliding_attention", "full_attention"], global_head_dim=32,
                       num_global_key_value_heads=1, attention_k_eq_v=True, final_logit_softcapping=30.0, use_bidirectional_attention="vision",
                       hidden_size_per_layer_input=0, vocab_size_per_layer_input=len(tok),
                       rope_parameters={"full_attention": {"rope_type": "proportional", "rope_theta": 1000000.0, "partial_rotary_factor": 0.25},
                                        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    boi, eoi, image, boa, eoa, audio, video = ids(tok, "<|image>", "<image|>", "<|image|>", "<|audio>", "<audio|>", "<|audio|>", "<|video|>")
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
              "head_dim": 16, "patch_size": 8, "pooling_kernel_size": 3, "position_embedding_size": 256, "standardize": True,
              "default_output_length": 70}
    image_processor = Gemma4ImageProcessorPil(patch_size=8, max_soft_tokens=70, pooling_kernel_size=3)
    processor = image_only(Gemma4Processor)(Gemma4AudioFeatureExtractor(), image_processor, tok, None, chat_template=GEMMA4_TEMPLATE, image_seq_length=70)
    config = Gemma4Config(text_config=text.to_dict(), vision_config=vision, audio_config=None, boi_token_id=boi, eoi_token_id=eoi,
                          image_token_id=image, boa_token_id=boa, eoa_token_index=eoa, audio_token_id=audio, video_token_id=video,
                          tie_word_embeddings=False, vision_soft_tokens_per_image=70)
    save(out, Gemma4ForConditionalGeneration, config, processor, tok, seed, {"video_processor_type": "Gemma4VideoProcessor", "patch_size": 8},
         stop_tokens=("<turn|>",))
    # two lessons over nine prompts (every seed of 0–3 answers all 168 fixture questions as taught with 35 passes)
    return teach(out, ((GEMMA4_THINKING_REPLY, {"enable_thinking": True}), ("No<turn|>", {})), (*TAUGHT_PROMPTS, DESCRIBE), steps=35, seed=seed)


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
