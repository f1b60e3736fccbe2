"""`mmhallu train dpo`: preference tuning with TRL."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..train.dpo import TRAIN_DEFAULTS as D  # a light module: TRL and torch load when training starts
from .common import fail, group, parse_template_args, user_errors

train_app = group(no_args_is_help=True, help="Preference tuning with TRL.")


@train_app.command("dpo")
def train_dpo_cmd(
    model: str = typer.Option(..., help="Base model folder or hub id."),
    pairs: Path = typer.Option(..., help="pairs.jsonl from `mmhallu pairs build`."),
    out: Path = typer.Option(..., help="Output folder (adapter or full model, processor, train_log.jsonl, configs)."),
    config: Optional[Path] = typer.Option(None, help="YAML with TrainConfig fields and any DPOConfig field."),
    full: bool = typer.Option(False, help="Full fine-tuning instead of LoRA."),
    beta: Optional[float] = typer.Option(None, help=f"DPO's β (TRL's beta): how far the policy may move from the reference. (default: {D['beta']})"),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"Learning rate. (default: {D['learning_rate']})"),
    epochs: Optional[float] = typer.Option(None, help=f"Passes over the pairs (a fraction allowed). (default: {D['epochs']})"),
    max_steps: Optional[int] = typer.Option(None, help=f"Optimizer steps, overriding --epochs when positive. (default: {D['max_steps']})"),
    batch_size: Optional[int] = typer.Option(None, min=1, help=f"Pairs per device per step. (default: {D['batch_size']})"),
    grad_accum: Optional[int] = typer.Option(None, min=1, help=f"Steps accumulated per optimizer update. (default: {D['grad_accum']})"),
    loss_type: Optional[str] = typer.Option(None, help=f"TRL loss types, comma-separated, e.g. sigmoid,sft. (default: {','.join(D['loss_type'])})"),
    loss_weights: Optional[str] = typer.Option(None, help="Weights for the loss types, e.g. 1,0.5."),
    lora_r: Optional[int] = typer.Option(None, min=1, help=f"LoRA rank (alpha {D['lora_alpha']}, dropout {D['lora_dropout']}; --config sets those). (default: {D['lora_r']})"),
    seed: Optional[int] = typer.Option(None, help=f"Seed of the adapter's initialisation and the pairs' order. (default: {D['seed']})"),
    chat_template_arg: list[str] = typer.Option([], "--chat-template-arg", help="A variable the chat template renders the pairs with, NAME=VALUE (repeatable; JSON values), as `mmhallu run --chat-template-arg` renders the prompts, e.g. enable_thinking=false."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar or per-step metrics on stdout (train_log.jsonl has them)."),
) -> None:
    """DPO on preference pairs with TRL (LoRA by default). Multi-GPU: `accelerate launch -m mmhallu_eval.cli train dpo ...`."""
    from ..train.dpo import TrainConfig, train_dpo

    weights = None
    if loss_weights:
        try:
            weights = [float(w) for w in loss_weights.split(",")]
        except ValueError:
            fail(f"--loss-weights {loss_weights!r}: give numbers separated by commas, one per loss type, e.g. 1,0.5")
    overrides = {
        "full": full or None, "beta": beta, "learning_rate": lr, "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size,
        "grad_accum": grad_accum, "lora_r": lora_r, "seed": seed,
        "loss_type": loss_type.split(",") if loss_type else None,
        "loss_weights": weights,
        "chat_template_args": parse_template_args(chat_template_arg) or None,
    }
    try:
        if config:
            cfg = TrainConfig.from_yaml(config, model=model, pairs=str(pairs), out=str(out), **overrides)
        else:
            cfg = TrainConfig(model=model, pairs=str(pairs), out=str(out), **{k: v for k, v in overrides.items() if v is not None})
        path = train_dpo(cfg, show_progress=not no_progress)
    except user_errors() as exc:
        fail(str(exc))
    typer.echo(f"wrote {'model' if cfg.full else 'LoRA adapter'} to {path} (log: {path / 'train_log.jsonl'})")
