"""The demo model's three training stages (docs/demo.md says why there are three).

1. `pretrain_language`: the language model alone, on questions about many generated scene graphs, with *ideal*
   image tokens (each cell's token is the mean embedding of its class and colour words). From scratch, an LM only
   finds the "look the asked object up among the image tokens" circuit with many cheap steps and a dense signal
   (open colour questions); doing it without the vision tower makes those steps cheap.
2. `ground_vision`: the vision tower and projector alone, pulled towards those ideal tokens on the real images.
3. `finetune`: everything together on the real training images (captions, yes/no, open and multiple-choice
   questions), the grounding loss kept so the image tokens stay readable.

All stages run the LLaVA model's own pieces (vision tower, projector, embeddings, language model, LM head) with
the image features placed at the `<image>` positions exactly as `LlavaForConditionalGeneration.forward` does.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

class Example(tuple):
    """(image key, prompt, answer) of one training example, and its `kind` — caption, color (open colour question),
    existence, attribute, relation or mcq — by which the stages choose their examples."""

    kind: str

    def __new__(cls, image: str, prompt: str, answer: str, kind: str) -> "Example":
        self = super().__new__(cls, (image, prompt, answer))
        self.kind = kind
        return self
Log = Callable[[str], None]


class Batcher:
    """Token ids of (prompt, answer) in the model's chat template with the image expanded to its tokens (cached),
    and right-padded training batches whose labels cover the answer and the end-of-turn token."""

    def __init__(self, processor: Any, n_image_tokens: int) -> None:
        self.processor = processor
        self.tok = processor.tokenizer
        self.n_image_tokens = n_image_tokens
        self._ids: dict[tuple[str, str], tuple[list[int], int]] = {}

    def encode(self, prompt: str, answer: str) -> tuple[list[int], int]:
        key = (prompt, answer)
        if key not in self._ids:
            chat = self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}], add_generation_prompt=True, tokenize=False)
            chat = chat.replace("<image>", "<image>" * self.n_image_tokens)
            p_ids = self.tok(chat, add_special_tokens=False)["input_ids"]
            full = self.tok(chat + answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
            if full[: len(p_ids)] != p_ids:
                raise ValueError(f"the answer {answer!r} changes the tokens of its prompt; the demo tokenizer must keep them apart")
            self._ids[key] = (full, len(p_ids))
        return self._ids[key]

    def batch(self, pairs: Sequence[tuple[str, str]]) -> tuple[Any, Any]:
        """Right-padded ids and labels. No attention mask is needed: under causal attention no real token sees
        the padding after it, and padding has no label (and the fused causal attention path is much faster)."""
        import torch

        encoded = [self.encode(p, a) for p, a in pairs]
        width = max(len(f) for f, _ in encoded)
        ids = torch.full((len(encoded), width), self.tok.pad_token_id, dtype=torch.long)
        labels = torch.full((len(encoded), width), -100, dtype=torch.long)
        for row, (full, n_prompt) in enumerate(encoded):
            ids[row, : len(full)] = torch.tensor(full)
            labels[row, n_prompt : len(full)] = torch.tensor(full[n_prompt:])
        return ids, labels


def cell_embeddings(model: Any, cells: Sequence[Sequence[Sequence[int]]]) -> Any:
    """(batch, cells, hidden): per cell the mean input embedding of its words (as many as patch_targets gives)."""
    import torch

    width = max(len(c) for per_image in cells for c in per_image)
    ids = torch.tensor([[list(c) + [c[0]] * (width - len(c)) for c in per_image] for per_image in cells])
    mask = torch.tensor([[[1.0] * len(c) + [0.0] * (width - len(c)) for c in per_image] for per_image in cells]).unsqueeze(-1)
    return (model.get_input_embeddings()(ids) * mask).sum(2) / mask.sum(2)


def answer_loss(model: Any, ids: Any, labels: Any, image_embeds: Any) -> Any:
    """Cross-entropy of the answer tokens, averaged per example then over the batch, so that a one-word answer
    weighs as much as a caption. `image_embeds` (batch, image tokens, hidden) go where the `<image>` tokens are."""
    import torch

    embeds = model.get_input_embeddings()(ids)
    where = (ids == model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
    embeds = embeds.masked_scatter(where, image_embeds.to(embeds.dtype))
    hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
    logits = model.lm_head(hidden[:, :-1])
    target = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none", ignore_index=-100)
    per_token = per_token.view(target.shape)
    counted = (target != -100).float()
    return ((per_token * counted).sum(1) / counted.sum(1).clamp(min=1)).mean()


def image_features(model: Any, pixel_values: Any) -> Any:
    """(batch, image tokens, hidden): the projected image tokens, as the LLaVA forward computes them."""
    import torch

    cfg = model.config
    feats = model.model.get_image_features(pixel_values=pixel_values, vision_feature_layer=cfg.vision_feature_layer,
                                           vision_feature_select_strategy=cfg.vision_feature_select_strategy).pooler_output
    return torch.stack(list(feats))


def grounding_loss(feats: Any, targets: Any) -> Any:
    """Scaled MSE of the projected image tokens to the ideal tokens (detached): image tokens then read like the
    words they show, at the scale of text."""
    targets = targets.detach()
    return ((feats - targets) ** 2).sum(-1).mean() / (targets**2).sum(-1).mean()


def _optimizer(params: Any, lr: float, steps: int) -> tuple[Any, Any]:
    import torch

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    return opt, sched


def _step(model: Any, loss: Any, opt: Any, sched: Any) -> float:
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    return float(loss.item())


def _report(name: str, step: int, steps: int, history: list[float], t0: float, log: Log) -> None:
    if step % 100 == 0 or step == steps - 1:
        recent = history[-100:]
        log(f"{name} step {step + 1}/{steps} loss {sum(recent) / len(recent):.4f} ({time.time() - t0:.0f}s)")


def pretrain_language(model: Any, batcher: Batcher, examples: list[Example], cells: dict[str, list[list[int]]], steps: int,
                      batch_size: int = 64, lr: float = 1e-3, seed: int = 0, log: Log = print) -> dict[str, Any]:
    """Stage 1: the language model on ideal image tokens (no vision forward)."""
    rng = random.Random(seed)
    params = [p for n, p in model.named_parameters() if "vision_tower" not in n and "multi_modal_projector" not in n]
    opt, sched = _optimizer(params, lr, steps)
    history: list[float] = []
    t0 = time.time()
    for step in range(steps):
        picked = [examples[rng.randrange(len(examples))] for _ in range(batch_size)]
        ids, labels = batcher.batch([(p, a) for _, p, a in picked])
        loss = answer_loss(model, ids, labels, cell_embeddings(model, [cells[k] for k, _, _ in picked]))
        history.append(_step(model, loss, opt, sched))
        _report("language", step, steps, history, t0, log)
    return {"steps": steps, "final_loss": sum(history[-100:]) / len(history[-100:]), "seconds": round(time.time() - t0, 1)}


def ground_vision(model: Any, pixels: dict[str, Any], cells: dict[str, list[list[int]]], steps: int, batch_size: int = 32,
                  lr: float = 2e-3, seed: int = 0, log: Log = print) -> dict[str, Any]:
    """Stage 2: the vision tower and projector towards the ideal tokens of the language model as it now is."""
    import torch

    rng = random.Random(seed)
    keys = sorted(pixels)
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if "vision_tower" in n or "multi_modal_projector" in n]
    for p in params:
        p.requires_grad_(True)
    opt, sched = _optimizer(params, lr, steps)
    history: list[float] = []
    t0 = time.time()
    try:
        for step in range(steps):
            picked = [keys[rng.randrange(len(keys))] for _ in range(batch_size)]
            feats = image_features(model, torch.stack([pixels[k] for k in picked]))
            with torch.no_grad():
                targets = cell_embeddings(model, [cells[k] for k in picked])
            history.append(_step(model, grounding_loss(feats, targets), opt, sched))
            _report("vision", step, steps, history, t0, log)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return {"steps": steps, "final_loss": sum(history[-100:]) / len(history[-100:]), "seconds": round(time.time() - t0, 1)}


def finetune(model: Any, batcher: Batcher, examples: list[Example], pixels: dict[str, Any], cells: dict[str, list[list[int]]], steps: int,
             batch_size: int = 32, lr: float = 5e-4, seed: int = 0, grounding_weight: float = 1.0, log: Log = print) -> dict[str, Any]:
    """Stage 3: the whole model on the real images; one vision forward serves the answer and grounding losses."""
    import torch

    rng = random.Random(seed)
    opt, sched = _optimizer(model.parameters(), lr, steps)
    history: list[float] = []
    t0 = time.time()
    for step in range(steps):
        picked = [examples[rng.randrange(len(examples))] for _ in range(batch_size)]
        ids, labels = batcher.batch([(p, a) for _, p, a in picked])
        feats = image_features(model, torch.stack([pixels[k] for k, _, _ in picked]))
        loss = answer_loss(model, ids, labels, feats)
        if grounding_weight:
            loss = loss + grounding_weight * grounding_loss(feats, cell_embeddings(model, [cells[k] for k, _, _ in picked]))
        history.append(_step(model, loss, opt, sched))
        _report("joint", step, steps, history, t0, log)
    return {"steps": steps, "final_loss": sum(history[-100:]) / len(history[-100:]), "seconds": round(time.time() - t0, 1)}
