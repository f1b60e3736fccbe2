"""LLaVA-1.5, LLaVA-NeXT (1.6, Mistral) and LLaVA-OneVision (Qwen2): a CLIP/SigLIP tower, a projector and an
`<image>` placeholder the processor expands to the tower's patch count (per tile for the any-resolution ones)."""
from __future__ import annotations

from pathlib import Path

from ...backends.hf_processor import image_only
from ...backends.vllm_layout import publish_weights
from ..tiny_models import build_llava
from .common import Tokens, family_tokenizer, ids, save, text_config

#: llava-hf/llava-1.5-*-hf: "USER: <image>\n… ASSISTANT:"; the Llama tokenizer prepends <s> itself
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
LLAMA2_TOKENS = Tokens(bos="<s>", eos="</s>", pad="<unk>", add_bos=True, special=("<image>",))

#: llava-hf/llava-v1.6-mistral-7b-hf: "[INST] <image>\n… [/INST]"
LLAVA_NEXT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ ' [/INST]' }}{% else %}{{ eos_token }}{% endif %}{% endfor %}"
)

#: llava-hf/llava-onevision-qwen2-*-ov-hf: "<|im_start|>user <image>\n…<|im_end|>"
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}{% endif %}"
    "{{ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN2_TOKENS = Tokens(eos="<|im_end|>", pad="<|endoftext|>", special=("<|im_start|>", "<image>", "<video>"))


def _clip(image_size: int = 32, patch: int = 8):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=image_size, patch_size=patch, projection_dim=32)


def build_llava_family(out: Path, seed: int = 0) -> Path:
    from transformers import LlamaConfig

    tok = family_tokenizer(LLAMA2_TOKENS, LLAVA_TEMPLATE)
    text = text_config(LlamaConfig, tok)
    built = build_llava(out, _clip(), text, tok, image_size=32, patch_size=8, vision_feature_layer=-2, seed=seed)
    # build_llava writes its own ChatML template: the family's is llava-1.5's
    from transformers import LlavaProcessor

    processor = LlavaProcessor.from_pretrained(built)
    processor.chat_template = LLAVA_TEMPLATE
    processor.save_pretrained(built)
    publish_weights(built)  # as save() does for the other families
    return built


def build_llava_next(out: Path, seed: int = 0) -> Path:
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextImageProcessorPil, LlavaNextProcessor, MistralConfig

    tok = family_tokenizer(LLAMA2_TOKENS, LLAVA_NEXT_TEMPLATE)
    config = LlavaNextConfig(vision_config=_clip(), text_config=text_config(MistralConfig, tok, sliding_window=None), image_token_index=ids(tok, "<image>")[0],
                             vision_feature_layer=-2, vision_feature_select_strategy="default", image_grid_pinpoints=[[32, 64], [64, 32], [64, 64]],
                             tie_word_embeddings=False)
    image_processor = LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_grid_pinpoints=[[32, 64], [64, 32], [64, 64]])
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                                   num_additional_image_tokens=1, chat_template=LLAVA_NEXT_TEMPLATE)
    return save(out, LlavaNextForConditionalGeneration, config, processor, tok, seed)


def build_llava_onevision(out: Path, seed: int = 0) -> Path:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )

    tok = family_tokenizer(QWEN2_TOKENS, ONEVISION_TEMPLATE)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    image, video = ids(tok, "<image>", "<video>")
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text_config(Qwen2Config, tok), image_token_index=image, video_token_index=video,
                                  vision_feature_layer=-1, vision_feature_select_strategy="full", image_grid_pinpoints=pinpoints,
                                  vision_aspect_ratio="anyres_max_9", tie_word_embeddings=False)
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints)
    processor = image_only(LlavaOnevisionProcessor)(image_processor=image_processor, tokenizer=tok, num_image_tokens=16,
                                                    vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9", chat_template=ONEVISION_TEMPLATE)
    return save(out, LlavaOnevisionForConditionalGeneration, config, processor, tok, seed, {"video_processor_type": "LlavaOnevisionVideoProcessor"})
