"""Tiny VLMs built from configs with random weights and a locally trained byte-level BPE tokenizer.

They make every code path (processor, chat template, batching, generation, DPO) testable offline in
seconds. Sizes respect vLLM's CPU attention (head size ≥ 32), so the same models serve the vLLM tests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

Arch = Literal["llava", "idefics3"]

#: ChatML. The last turn of a conversation ends at <|im_end|> with no newline after it: that is how the tiny and
#: demo models are trained to stop, and TRL's DPO takes the completion as "full conversation minus prompt", so a
#: trailing newline would be a token the model never produces (−16 nats) inside every chosen and rejected answer.
#: Generation prompts (add_generation_prompt) render exactly as in plain ChatML. (The newline is an expression:
#: transformers renders templates with trim_blocks, which drops a newline written right after a block tag.)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>{% if not loop.last or add_generation_prompt %}{{ '\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
BASE_SPECIAL = ["<|endoftext|>", "<pad>", "<|im_start|>", "<|im_end|>", "<image>"]
IDEFICS3_SPECIAL = ["<fake_token_around_image>", "<global-img>", "<end_of_utterance>"] + [
    f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5)
]
OBJECT_WORDS = (
    "person bicycle car motorcycle airplane bus train truck boat traffic light fire hydrant stop sign bench bird cat "
    "dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee skis snowboard "
    "ball kite bat glove skateboard surfboard racket bottle wine glass cup fork knife spoon bowl banana apple sandwich "
    "orange broccoli carrot pizza donut cake chair couch plant bed table toilet tv laptop mouse remote keyboard phone "
    "microwave oven toaster sink refrigerator book clock vase scissors teddy hair drier toothbrush circle square "
    "triangle star heart red green blue yellow purple orange small large left right above below"
).split()


def _corpus() -> list[str]:
    lines = []
    for w in OBJECT_WORDS:
        lines.append(f"Is there a {w} in the image? Answer the question using a single word or phrase.")
        lines.append(f"Yes, there is a {w}. No, there is no {w} in the image.")
        lines.append(f"The image shows a {w} next to a {w}. Please describe this image in detail.")
    lines += ["Select the best answer for the multiple-choice question. (A) (B) (C) (D) (E)"] * 3
    return lines


def build_tokenizer(special: list[str], vocab_size: int = 600):
    """Byte-level BPE trained on a small in-memory corpus, wrapped as a fast HF tokenizer."""
    return build_tokenizer_from(_corpus(), special, vocab_size)


def build_tokenizer_from(corpus: list[str], special: list[str], vocab_size: int = 600):
    """Byte-level BPE trained on `corpus`, with the chat template and special tokens the models need."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token=None,
        additional_special_tokens=special[2:],
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )


def _text_config(vocab_size: int, pad_id: int, eos_id: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=1024,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )


def build_llava(out: str | Path, vision: Any, text: Any, tok: Any, image_size: int, patch_size: int, vision_feature_layer: int = -1,
                seed: int = 0) -> Path:
    """A LLaVA-architecture model with random weights (seeded) and its processor, saved to OUT: the tiny test model
    and the benchmark's LLaVA-1.5-shaped model differ only in their configs."""
    import torch
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    out = Path(out)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}, do_center_crop=True
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
        chat_template=CHAT_TEMPLATE,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_llava(out: str | Path, seed: int = 0) -> Path:
    """LLaVA architecture: CLIP ViT (32px, patch 8 → 16 image tokens) + 2-layer Llama (hidden 64, 2 heads)."""
    from transformers import CLIPVisionConfig

    tok = build_tokenizer(BASE_SPECIAL)
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
        projection_dim=32,
    )
    return build_llava(out, vision, _text_config(len(tok), tok.pad_token_id, tok.eos_token_id), tok, image_size=32, patch_size=8, seed=seed)


def build_tiny_idefics3(out: str | Path, seed: int = 0, text: dict[str, Any] | None = None) -> Path:
    """Idefics3/SmolVLM architecture: SigLIP-style encoder (32px, patch 8) + pixel shuffle + 2-layer Llama. `text`
    overrides settings of the language model (a larger one, for benchmarks where the engine's work must not be
    negligible)."""
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        Idefics3VisionConfig,
    )

    out = Path(out)
    tok = build_tokenizer(BASE_SPECIAL + IDEFICS3_SPECIAL)
    vision = Idefics3VisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    config = Idefics3Config(
        vision_config=vision.to_dict(),
        text_config={**_text_config(len(tok), tok.pad_token_id, tok.eos_token_id).to_dict(), **(text or {})},
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    image_processor = Idefics3ImageProcessorPil(
        do_resize=True,
        size={"longest_edge": 32},
        max_image_size={"longest_edge": 32},
        do_image_splitting=False,
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tok, image_seq_len=4, chat_template=CHAT_TEMPLATE
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_tiny_model(arch: Arch, out: str | Path, seed: int = 0) -> Path:
    builders = {"llava": build_tiny_llava, "idefics3": build_tiny_idefics3}
    if arch not in builders:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(builders)}")
    return builders[arch](out, seed=seed)
