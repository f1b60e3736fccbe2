"""InternVL (HF-native, InternVL3-*-hf), Llama 3.2 Vision (Mllama: cross-attention to image tiles), Mistral 3
(Pixtral tower: [IMG] rows broken by [IMG_BREAK]) and Aya Vision (Cohere turns, SigLIP tiles) — the families whose
templates or tokenizers carry their own BOS handling or image markers."""
from __future__ import annotations

import json
from pathlib import Path

from ...backends.hf_processor import image_only
from .common import Tokens, family_tokenizer, ids, save, text_config

INTERNVL_TOKENS = Tokens(eos="<|im_end|>", pad="<|endoftext|>", special=("<|im_start|>",),
                         named={"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
#: OpenGVLab/InternVL3-*-hf: ChatML, one <IMG_CONTEXT> per image that the processor expands between <img> and </img>
INTERNVL_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_internvl(out: Path, seed: int = 0) -> Path:
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor, Qwen2Config

    tok = family_tokenizer(INTERNVL_TOKENS, INTERNVL_TEMPLATE)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": [32, 32], "patch_size": [8, 8]}
    config = InternVLConfig(vision_config=vision, text_config=text_config(Qwen2Config, tok).to_dict(), image_token_id=ids(tok, "<IMG_CONTEXT>")[0],
                            image_seq_length=4, downsample_ratio=0.5, vision_feature_layer=-1, vision_feature_select_strategy="default",
                            tie_word_embeddings=False)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=True, min_patches=1, max_patches=4)
    processor = image_only(InternVLProcessor)(image_processor=image_processor, tokenizer=tok, image_seq_length=4, chat_template=INTERNVL_TEMPLATE)
    return save(out, InternVLForConditionalGeneration, config, processor, tok, seed, {"video_processor_type": "InternVLVideoProcessor"})


LLAMA3_TOKENS = Tokens(bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|finetune_right_pad_id|>", add_bos=True,
                       special=("<|start_header_id|>", "<|end_header_id|>", "<|image|>", "<|python_tag|>", "<|end_of_text|>"))
#: meta-llama/Llama-3.2-*-Vision-Instruct: starts with {{ bos_token }}, the image tag before the text
MLLAMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|image|>' }}{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def build_mllama(out: Path, seed: int = 0) -> Path:
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessorPil, MllamaProcessor, MllamaTextConfig

    tok = family_tokenizer(LLAMA3_TOKENS, MLLAMA_TEMPLATE)
    text = text_config(MllamaTextConfig, tok, num_hidden_layers=2, cross_attention_layers=[1], rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    text_dict = {k: v for k, v in text.to_dict().items() if k != "head_dim"}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_global_layers": 1, "attention_heads": 2, "vision_output_dim": 64,
              "image_size": 32, "patch_size": 8, "max_num_tiles": 2, "intermediate_layers_indices": [0], "supported_aspect_ratios": [[1, 1], [1, 2], [2, 1]]}
    config = MllamaConfig(vision_config=vision, text_config=text_dict, image_token_index=ids(tok, "<|image|>")[0])
    image_processor = MllamaImageProcessorPil(size={"height": 32, "width": 32}, max_image_tiles=2)
    processor = MllamaProcessor(image_processor=image_processor, tokenizer=tok, chat_template=MLLAMA_TEMPLATE)
    return save(out, MllamaForConditionalGeneration, config, processor, tok, seed)


MISTRAL_TOKENS = Tokens(bos="<s>", eos="</s>", pad="<pad>", add_bos=True, special=("[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"))
#: mistralai/Mistral-Small-3.1-*-Instruct (HF template, without its default system prompt): {{ bos_token }}[INST]…[/INST]
MISTRAL3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST]' }}{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for block in message['content'] %}{% if block['type'] == 'image' %}{{ '[IMG]' }}{% elif block['type'] == 'text' %}{{ block['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '[/INST]' }}{% elif message['role'] == 'assistant' %}{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for block in message['content'] %}{{ block['text'] }}{% endfor %}{% endif %}{{ eos_token }}{% endif %}{% endfor %}"
)


def build_mistral3(out: Path, seed: int = 0) -> Path:
    """transformers' PixtralProcessor needs torchvision (its module imports the torchvision image processor), so the
    processor is written as its files — tokenizer, image processor, processor_config.json — which is how a published
    checkpoint holds it and what `PixtralProcessor.from_pretrained` reads where torchvision is installed."""
    from transformers import MistralConfig, Mistral3Config, Mistral3ForConditionalGeneration, PixtralImageProcessorPil

    tok = family_tokenizer(MISTRAL_TOKENS, MISTRAL3_TEMPLATE)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 64, "patch_size": 8, "head_dim": 16}
    config = Mistral3Config(vision_config=vision, text_config=text_config(MistralConfig, tok, sliding_window=None).to_dict(),
                            image_token_index=ids(tok, "[IMG]")[0], spatial_merge_size=2, vision_feature_layer=-1, tie_word_embeddings=False)
    save(out, Mistral3ForConditionalGeneration, config, None, tok, seed)
    PixtralImageProcessorPil(size={"longest_edge": 64}, patch_size=16).save_pretrained(out)
    tok.save_pretrained(out)
    settings = {"processor_class": "PixtralProcessor", "patch_size": 8, "spatial_merge_size": 2, "image_token": "[IMG]",
                "image_break_token": "[IMG_BREAK]", "image_end_token": "[IMG_END]"}
    (Path(out) / "processor_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    return Path(out)


COHERE_TOKENS = Tokens(bos="<BOS_TOKEN>", eos="<|END_OF_TURN_TOKEN|>", pad="<PAD>", add_bos=True,
                       special=("<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>", "<image>", "<|START_OF_IMG|>",
                                "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>", "TILE", "TILE_GLOBAL"))
#: CohereLabs/aya-vision-*: {{ bos_token }} then Cohere turns; the processor expands <image> into tiles of patches
AYA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|START_OF_TURN_TOKEN|>' }}{% if message['role'] == 'user' %}{{ '<|USER_TOKEN|>' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|CHATBOT_TOKEN|>' }}{% else %}{{ '<|SYSTEM_TOKEN|>' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}{{ '<|END_OF_TURN_TOKEN|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{% endif %}"
)


def build_aya_vision(out: Path, seed: int = 0) -> Path:
    from transformers import AyaVisionConfig, AyaVisionForConditionalGeneration, AyaVisionProcessor, CohereConfig, GotOcr2ImageProcessorPil

    tok = family_tokenizer(COHERE_TOKENS, AYA_TEMPLATE)
    # as published (CohereLabs/aya-vision-*): the SigLIP tower without its pooling head, which the model never uses
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8, "vision_use_head": False}
    config = AyaVisionConfig(vision_config=vision, text_config={**text_config(CohereConfig, tok).to_dict(), "model_type": "cohere"},
                             image_token_index=ids(tok, "<|IMG_PATCH|>")[0], downsample_factor=2, vision_feature_layer=-1,
                             vision_feature_select_strategy="full", tie_word_embeddings=False)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=True, min_patches=1, max_patches=2)
    processor = AyaVisionProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8, img_size=32, downsample_factor=2, chat_template=AYA_TEMPLATE)
    return save(out, AyaVisionForConditionalGeneration, config, processor, tok, seed)
