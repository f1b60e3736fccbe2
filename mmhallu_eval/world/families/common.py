"""What every tiny family build shares: a locally trained tokenizer carrying the family's special tokens, a small
decoder config, seeded random weights, and saving model + processor the way a published checkpoint is laid out."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ...prompts import SHORT_ANSWER
from ..fixtures import SHAPES
from ..tiny_models import _corpus

#: text model size shared by the families: head size 32 (vLLM's CPU attention needs ≥ 32), two layers
TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
        "head_dim": 32, "max_position_embeddings": 2048, "tie_word_embeddings": False}


@dataclass(frozen=True)
class Tokens:
    """A family's special tokens: `bos` is prepended by the tokenizer itself when `add_bos` (Llama, Gemma, Cohere do),
    which is what makes a template that also writes `{{ bos_token }}` produce two unless the prompt is encoded as the
    processor's own `apply_chat_template(tokenize=True)` does."""

    eos: str
    pad: str
    bos: str | None = None
    add_bos: bool = False
    special: tuple[str, ...] = ()
    #: named tokens a processor reads from the tokenizer (e.g. Gemma 3's boi_token), as `extra_special_tokens`
    named: dict[str, str] = field(default_factory=dict)
    #: tokens added as plain added tokens (not special: they survive skip_special_tokens), e.g. <think>
    plain: tuple[str, ...] = ()


def family_tokenizer(tokens: Tokens, chat_template: str | None, vocab_size: int = 700, corpus_extra: tuple[str, ...] = ()) -> Any:
    """Byte-level BPE trained on a small in-memory corpus, with the family's special tokens and BOS behaviour."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    ordered = list(dict.fromkeys([t for t in (tokens.bos, tokens.eos, tokens.pad) if t] + list(tokens.special) + list(tokens.named.values())))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=ordered, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus() + list(corpus_extra), trainer=trainer)
    if tokens.add_bos and tokens.bos:
        bos_id = tok.token_to_id(tokens.bos)
        tok.post_processor = processors.TemplateProcessing(single=f"{tokens.bos} $A", pair=f"{tokens.bos} $A {tokens.bos} $B", special_tokens=[(tokens.bos, bos_id)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=tokens.bos, eos_token=tokens.eos, pad_token=tokens.pad, unk_token=None,
        additional_special_tokens=[t for t in ordered if t not in (tokens.bos, tokens.eos, tokens.pad)],
        extra_special_tokens=dict(tokens.named) or None, padding_side="left", chat_template=chat_template,
    )
    if tokens.plain:
        fast.add_tokens(list(tokens.plain))
    return fast


def ids(tok: Any, *names: str) -> list[int]:
    return [tok.convert_tokens_to_ids(n) for n in names]


def text_config(cls: Any, tok: Any, **overrides: Any) -> Any:
    """The families' small decoder: vocabulary from the tokenizer, eos/pad/bos ids set so generation stops."""
    values: dict[str, Any] = {**TEXT, "vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
                              "bos_token_id": tok.bos_token_id}
    values.update(overrides)
    return cls(**values)


def save(out: str | Path, model_cls: Any, config: Any, processor: Any, tok: Any, seed: int,
         video_processor: dict[str, Any] | None = None, stop_tokens: tuple[str, ...] = ()) -> Path:
    """Seeded random weights, the processor, and (for families with one) the video processor config a published
    checkpoint carries beside the image processor — the file that makes `AutoProcessor` need torchvision. A CLIP or
    SigLIP tower is saved under the published `vision_tower.vision_model.*` names (transformers 5 drops the
    `vision_model`; vLLM loads only the published names), and fused expert weights in the published shapes (see
    `backends.vllm_layout`). `stop_tokens` join the end-of-sequence token in the
    generation config, as a published checkpoint lists its end-of-turn token there."""
    import torch

    from ...backends.vllm_layout import publish_weights

    out = Path(out)
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, *ids(tok, *stop_tokens)] if stop_tokens else tok.eos_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    model.save_pretrained(out)
    if processor is not None:
        processor.save_pretrained(out)
    if video_processor is not None:
        (out / "video_preprocessor_config.json").write_text(json.dumps(video_processor, indent=2) + "\n")
    publish_weights(out)
    return out


Builder = Callable[[Path, int], Path]


#: what a taught model is asked by default: the POPE fixture's question about every shape it draws, in the short-answer
#: form of its prompts, and two plain questions. Taught only a dog and a cat, some seeds' models (and one seed's on
#: another CPU) went astray on an untaught word ("diamond", "cross"); taught these, every seed tried answers all 168
#: fixture questions as taught (30 passes over the eight take a tiny Qwen3-VL 6–7 s on a 2-core CPU)
TAUGHT_PROMPTS = (*(f"Is there a {shape} in the image?{SHORT_ANSWER}" for shape in SHAPES), "Is there a dog in the image?",
                  "Is there a cat in the image?")


def teach(out: str | Path, lessons: tuple[tuple[str, dict[str, Any]], ...], prompts: tuple[str, ...] = TAUGHT_PROMPTS, steps: int = 30,
          seed: int = 0) -> Path:
    """Overfit a saved tiny model to answer every prompt with a lesson's reply: a random model never
    writes a closing `</think>`, and the reasoning tests need one that does. A lesson is (reply, chat template
    variables the prompts are rendered with), so that one model can answer one way with `enable_thinking` and
    another way without."""
    import numpy as np
    import torch
    from PIL import Image

    from ...backends.hf_processor import load_processor
    from ...backends.hf_prompt import with_images
    from ...backends.vllm_layout import publish_weights
    from ...types import GenerationConfig, Request, user_message
    from transformers import AutoModelForImageTextToText

    processor = load_processor(str(out))
    model = AutoModelForImageTextToText.from_pretrained(out).train()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    batches = []
    for reply, template_args in lessons:
        reply_ids = processor.tokenizer(reply, add_special_tokens=False, return_tensors="pt")["input_ids"]
        for i, text in enumerate(prompts):
            image = Image.fromarray(rng.integers(0, 255, (30 + 5 * i, 40 + 7 * i, 3), dtype=np.uint8))
            request = Request(str(i), user_message(text), [image], GenerationConfig())
            enc = processor.apply_chat_template(with_images(request), add_generation_prompt=True, tokenize=True, return_dict=True,
                                                return_tensors="pt", **template_args)
            n = enc["input_ids"].shape[1]
            inputs = {}
            for key, value in enc.items():  # per-token tensors grow by the reply; image tensors stay
                if value.dim() == 2 and value.shape[1] == n:
                    fill = reply_ids if key == "input_ids" else torch.ones_like(reply_ids) if key == "attention_mask" else torch.zeros_like(reply_ids)
                    value = torch.cat([value, fill], 1)
                inputs[key] = value
            labels = inputs["input_ids"].clone()
            labels[:, :n] = -100
            batches.append((inputs, labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        for inputs, labels in batches:
            model(**inputs, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval().save_pretrained(out)
    publish_weights(out)  # saved again: in the published layout, as save() leaves it
    return Path(out)


#: a plain Llama-style text tokenizer, for checkpoints that are *not* image-text models (the loader refuses them)
LLAMA_TEXT_ONLY_TOKENS = Tokens(bos="<s>", eos="</s>", pad="<unk>", add_bos=True)
