"""Qwen2-VL, Qwen2.5-VL, Qwen3-VL (its Thinking variant, its MoE), Qwen3.5 (and its MoE) and GLM-4V: dynamic-resolution vision towers whose
images become a variable number of pad tokens between vision start/end markers, ChatML-style or GLM turns."""
from __future__ import annotations

from pathlib import Path

from ...backends.hf_processor import image_only
from .common import Tokens, family_tokenizer, ids, save, teach, text_config

QWEN_TOKENS = Tokens(eos="<|im_end|>", pad="<|endoftext|>", special=("<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"),
                     plain=("<think>", "</think>"))

_QWEN_CONTENT = (
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
)
#: Qwen2-VL / Qwen2.5-VL: a default system turn when the conversation has none
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    + _QWEN_CONTENT + "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: Qwen3-VL Instruct: no default system turn
QWEN3_TEMPLATE = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n" + _QWEN_CONTENT + "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
#: Qwen3-VL Thinking: the generation prompt opens the reasoning block; the model closes it before answering. An
#: answered turn is written after an empty closed block, as Qwen3's template writes the turn after the last question
QWEN3_THINKING_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['role'] == 'assistant' %}<think>\n\n</think>\n\n{% endif %}"
    + _QWEN_CONTENT + "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)

_ROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}
_QWEN_VIDEO = {"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
_QWEN3_VIDEO = {**_QWEN_VIDEO, "video_processor_type": "Qwen3VLVideoProcessor", "patch_size": 16}


def _qwen_image_processor(patch: int = 14):
    from transformers import Qwen2VLImageProcessorPil

    # 2×2 merged patches of 14 px on at most a 56×112 view: 4-8 image tokens per image
    return Qwen2VLImageProcessorPil(patch_size=patch, merge_size=2, size={"shortest_edge": (4 * patch) ** 2, "longest_edge": 2 * (4 * patch) ** 2})


def _qwen_ids(tok) -> dict[str, int]:
    image, video, start, end = ids(tok, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    return {"image_token_id": image, "video_token_id": video, "vision_start_token_id": start, "vision_end_token_id": end}


def build_qwen2_vl(out: Path, seed: int = 0) -> Path:
    from transformers import Qwen2Config, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    tok = family_tokenizer(QWEN_TOKENS, QWEN2_TEMPLATE)
    text = text_config(Qwen2Config, tok, rope_parameters=_ROPE).to_dict()
    config = Qwen2VLConfig(text_config=text, vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2,
                                                            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
                           tie_word_embeddings=False, **_qwen_ids(tok))
    processor = image_only(Qwen2VLProcessor)(image_processor=_qwen_image_processor(), tokenizer=tok, chat_template=QWEN2_TEMPLATE)
    return save(out, Qwen2VLForConditionalGeneration, config, processor, tok, seed, _QWEN_VIDEO)


def build_qwen2_5_vl(out: Path, seed: int = 0) -> Path:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2Config

    tok = family_tokenizer(QWEN_TOKENS, QWEN2_TEMPLATE)
    text = text_config(Qwen2Config, tok, rope_parameters=_ROPE).to_dict()
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64, "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [1]}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **_qwen_ids(tok))
    processor = image_only(Qwen2_5_VLProcessor)(image_processor=_qwen_image_processor(), tokenizer=tok, chat_template=QWEN2_TEMPLATE)
    return save(out, Qwen2_5_VLForConditionalGeneration, config, processor, tok, seed, _QWEN_VIDEO)


def build_qwen3_vl(out: Path, seed: int = 0, template: str = QWEN3_TEMPLATE, moe: bool = False) -> Path:
    """Qwen3-VL's layout; `moe`: Qwen3-VL-30B-A3B's, a sparse mixture-of-experts decoder (8 of 128 experts per token in
    the published config; 2 of 4 here, every layer sparse) whose router sees the pad tokens of a left-padded batch as
    tokens, which must not change a real token's experts."""
    from transformers import (Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration,
                              Qwen3VLMoeTextConfig, Qwen3VLProcessor, Qwen3VLTextConfig)

    config_cls, text_cls, model_cls = ((Qwen3VLMoeConfig, Qwen3VLMoeTextConfig, Qwen3VLMoeForConditionalGeneration) if moe
                                       else (Qwen3VLConfig, Qwen3VLTextConfig, Qwen3VLForConditionalGeneration))
    # `norm_topk_prob`: the published MoE config's field, which vLLM reads (transformers always normalises)
    experts = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 48, "decoder_sparse_step": 1, "mlp_only_layers": [],
               "norm_topk_prob": True} if moe else {}
    tok = family_tokenizer(QWEN_TOKENS, template)
    text = text_config(text_cls, tok, rope_parameters={**_ROPE, "mrope_section": [4, 6, 6], "mrope_interleaved": True}, **experts).to_dict()
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64, "patch_size": 16,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}
    config = config_cls(text_config=text, vision_config=vision, tie_word_embeddings=False, **_qwen_ids(tok))
    processor = image_only(Qwen3VLProcessor)(image_processor=_qwen_image_processor(16), tokenizer=tok, chat_template=template)
    return save(out, model_cls, config, processor, tok, seed, _QWEN3_VIDEO)


def build_qwen3_vl_moe(out: Path, seed: int = 0) -> Path:
    return build_qwen3_vl(out, seed, moe=True)


#: Qwen3.5 (hybrid thinking): the generation prompt opens the reasoning block, or with the template argument
#: `enable_thinking` false writes it closed and empty, so the answer comes at once; an assistant turn without
#: reasoning is written after an empty closed block, as Qwen3's template writes the turn after the last question
#: (so a prompt with thinking off is the start of prompt + answer, which is how TRL finds where an answer begins)
QWEN3_5_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['role'] == 'assistant' %}<think>\n\n</think>\n\n{% endif %}"
    + _QWEN_CONTENT + "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% else %}<think>\n{% endif %}{% endif %}"
)

#: what the tiny Thinking model is taught to write after its generation prompt's `<think>`
THINKING_REPLY = "Yes, a dog would fit here. Looking closer, it is only a shape.\n</think>\n\nNo<|im_end|>"


def build_qwen3_vl_thinking(out: Path, seed: int = 0) -> Path:
    """Qwen3-VL-Thinking's layout, taught to reason, close `</think>` and answer "No" (tests `--reasoning`)."""
    build_qwen3_vl(out, seed, QWEN3_THINKING_TEMPLATE)
    return teach(out, ((THINKING_REPLY, {}),), seed=seed)


def build_qwen3_5(out: Path, seed: int = 0, moe: bool = False) -> Path:
    """Qwen3.5's layout: Qwen3-VL's vision tower and processor before a hybrid decoder, Gated DeltaNet (linear
    attention, a recurrent state that left padding must not reach) and full-attention layers, partial rotary; taught
    to close its reasoning and answer, as the Thinking build is. `moe`: Qwen3.5-MoE's (35B-A3B and larger), whose
    decoder layers route each token to experts beside a shared expert."""
    from transformers import (Qwen3_5Config, Qwen3_5ForConditionalGeneration, Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration,
                              Qwen3_5MoeTextConfig, Qwen3_5TextConfig, Qwen3VLProcessor)

    config_cls, text_cls, model_cls = ((Qwen3_5MoeConfig, Qwen3_5MoeTextConfig, Qwen3_5MoeForConditionalGeneration) if moe
                                       else (Qwen3_5Config, Qwen3_5TextConfig, Qwen3_5ForConditionalGeneration))
    tok = family_tokenizer(QWEN_TOKENS, QWEN3_5_TEMPLATE)
    experts = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 48, "shared_expert_intermediate_size": 48} if moe else {}
    text = text_config(text_cls, tok, layer_types=["linear_attention", "full_attention"], linear_num_key_heads=2, linear_num_value_heads=2,
                       linear_key_head_dim=128, linear_value_head_dim=128, **experts,
                       rope_parameters={**_ROPE, "mrope_section": [2, 3, 3], "mrope_interleaved": True, "partial_rotary_factor": 0.5}).to_dict()
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64, "patch_size": 16,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 64}
    config = config_cls(text_config=text, vision_config=vision, tie_word_embeddings=False, **_qwen_ids(tok))
    processor = image_only(Qwen3VLProcessor)(image_processor=_qwen_image_processor(16), tokenizer=tok, chat_template=QWEN3_5_TEMPLATE)
    save(out, model_cls, config, processor, tok, seed, _QWEN3_VIDEO)
    return teach(out, ((THINKING_REPLY, {}),), seed=seed)


def build_qwen3_5_moe(out: Path, seed: int = 0) -> Path:
    return build_qwen3_5(out, seed, moe=True)


GLM_TOKENS = Tokens(eos="<|endoftext|>", pad="<|endoftext|>", special=("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|begin_of_image|>",
                                                                        "<|end_of_image|>", "<|image|>", "<|begin_of_video|>", "<|end_of_video|>", "<|video|>"),
                    plain=("<think>", "</think>", "<answer>", "</answer>"))
#: GLM-4.1V-style turns after the [gMASK]<sop> prefix
GLM_TEMPLATE = (
    "[gMASK]<sop>{% for message in messages %}<|{{ message['role'] }}|>\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}<|begin_of_image|><|image|><|end_of_image|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_glm4v(out: Path, seed: int = 0) -> Path:
    from transformers import Glm4vConfig, Glm4vForConditionalGeneration, Glm4vImageProcessorPil, Glm4vProcessor, Glm4vTextConfig

    tok = family_tokenizer(GLM_TOKENS, GLM_TEMPLATE)
    text = text_config(Glm4vTextConfig, tok, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6],
                                                               "partial_rotary_factor": 1.0}).to_dict()
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64, "patch_size": 14, "image_size": 56,
              "spatial_merge_size": 2, "temporal_patch_size": 2}
    image, video, i0, i1, v0, v1 = ids(tok, "<|image|>", "<|video|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>")
    config = Glm4vConfig(text_config=text, vision_config=vision, image_token_id=image, video_token_id=video, image_start_token_id=i0,
                         image_end_token_id=i1, video_start_token_id=v0, video_end_token_id=v1, tie_word_embeddings=False)
    image_processor = Glm4vImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2, size={"shortest_edge": 56 * 56, "longest_edge": 2 * 56 * 56})
    processor = image_only(Glm4vProcessor)(image_processor=image_processor, tokenizer=tok, chat_template=GLM_TEMPLATE)
    # as published (GLM-4.1V's video_preprocessor_config.json): vLLM sizes its start-up profiling from the video side
    video = {"video_processor_type": "Glm4vVideoProcessor", "size": dict(image_processor.size), "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    return save(out, Glm4vForConditionalGeneration, config, processor, tok, seed, video)
