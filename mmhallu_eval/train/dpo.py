"""`mmhallu train dpo`: a thin layer over TRL's DPOTrainer/DPOConfig (no home-made loss), LoRA via PEFT by
default. Logs go to DIR/train_log.jsonl; the configs used are saved next to the checkpoint."""
from __future__ import annotations

import difflib
import json
import re
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..files import atomic_write_json
from ..options import is_count, is_number
from ..outputs import folder_relation, refuse_foreign_folder
from ..quiet import hide_library_progress_bars, library_renames_hidden
from ..task import TaskError
from ..terminal import warn
from .pairs import read_pairs


@dataclass
class TrainConfig:
    model: str
    pairs: str
    out: str
    full: bool = False
    beta: float = 0.1
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid"])
    loss_weights: list[float] | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    #: "all-linear" (PEFT's: the vision tower and projector too, as TRL's VLM examples have it), "language-model"
    #: (the LLM's linear layers only, as LLaVA's and HA-DPO's LoRA recipes and vLLM's LoRA support for VLMs have
    #: it), or PEFT's regex / module names
    lora_target_modules: str = "all-linear"
    seed: int = 0
    logging_steps: int = 1
    #: variables the chat template renders the pairs with (`--chat-template-arg`, e.g. enable_thinking: false), as the
    #: evaluations render their prompts: TRL's `chat_template_kwargs` column
    chat_template_args: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # any other DPOConfig field (from --config YAML)

    def __post_init__(self) -> None:
        """Numbers that cannot train are refused here, before a model loads (a zero batch, a negative rate)."""
        for name in ("beta", "learning_rate", "epochs", "lora_dropout"):  # YAML reads 5e-5 (no dot) as text
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    setattr(self, name, float(value))
                except ValueError:
                    raise TaskError(f"train setting {name}={value!r}: give a number") from None
        positive = {"beta": self.beta, "learning_rate": self.learning_rate, "epochs": self.epochs}
        for name, value in positive.items():
            if not is_number(value) or not value > 0:
                raise TaskError(f"train setting {name}={value!r}: give a number above 0")
        if isinstance(self.loss_type, str):  # `loss_type: sigmoid` in a YAML file
            self.loss_type = [self.loss_type]
        if not isinstance(self.loss_type, list) or not self.loss_type or not all(isinstance(t, str) and t for t in self.loss_type):
            raise TaskError(f"train setting loss_type={self.loss_type!r}: give TRL loss type names, e.g. sigmoid or sigmoid,sft")
        if self.loss_weights is not None and (
            not isinstance(self.loss_weights, list)
            or not all(is_number(w) for w in self.loss_weights)
        ):
            raise TaskError(f"train setting loss_weights={self.loss_weights!r}: give one number per loss type, e.g. 1,0.5")
        at_least_one = {"batch_size": self.batch_size, "grad_accum": self.grad_accum, "lora_r": self.lora_r, "logging_steps": self.logging_steps}
        for name, value in at_least_one.items():
            if not is_count(value):
                raise TaskError(f"train setting {name}={value!r}: give a whole number of at least 1")
        if not isinstance(self.max_steps, int) or (self.max_steps < 1 and self.max_steps != -1):
            raise TaskError(f"train setting max_steps={self.max_steps!r}: give a whole number of at least 1, or -1 for --epochs")
        if not 0 <= self.lora_dropout < 1:
            raise TaskError(f"train setting lora_dropout={self.lora_dropout!r}: give a share from 0 to below 1")
        if not isinstance(self.chat_template_args, dict) or not all(isinstance(k, str) and k.isidentifier() for k in self.chat_template_args):
            raise TaskError(f"train setting chat_template_args={self.chat_template_args!r}: give a mapping of template variable names to values, "
                            "e.g. {enable_thinking: false}")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise TaskError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise TaskError(f"--config {path}: not UTF-8 text; save it as UTF-8 YAML") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise TaskError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        if not isinstance(data, dict):
            raise TaskError(f"{path}: expected a mapping of settings")
        known = {f for f in cls.__dataclass_fields__}
        extra = {k: v for k, v in data.items() if k not in known}
        base = {k: v for k, v in data.items() if k in known}
        base.update({k: v for k, v in overrides.items() if v is not None})
        base.setdefault("extra", {}).update(extra)
        check_dpo_settings(base, where=str(path))
        return cls(**base)


#: every setting's default (the `train dpo` and `loop` commands show them in their help)
TRAIN_DEFAULTS: dict[str, Any] = {f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
                                  for f in fields(TrainConfig) if f.default is not MISSING or f.default_factory is not MISSING}


def check_dpo_settings(settings: dict[str, Any], where: str = "train settings") -> None:
    """Every setting is a TrainConfig field or a field of TRL's DPOConfig: a typo fails here, with a did-you-mean,
    before any model loads (not deep inside DPOConfig after the weights are in memory)."""
    import dataclasses

    from trl import DPOConfig

    own = {f.name for f in dataclasses.fields(TrainConfig)}
    dpo = {f.name for f in dataclasses.fields(DPOConfig)}
    names = [k for k in settings if k != "extra"] + list(settings.get("extra") or {})
    for key in names:
        if key not in own and key not in dpo:
            close = difflib.get_close_matches(key, sorted(own | dpo), n=2, cutoff=0.7)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise TaskError(f"{where}: {key!r} is neither a training setting nor a DPOConfig field (TRL).{hint}")


class JsonlLogger:
    """A TrainerCallback writing every log event (loss, rewards, lr, step) as one JSON line."""

    def __init__(self, path: Path):
        from transformers import TrainerCallback

        outer = self
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

        class _CB(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                with outer.path.open("a") as fh:
                    fh.write(json.dumps({"step": state.global_step, "epoch": state.epoch, "time": time.time(), **(logs or {})}) + "\n")

        self.callback = _CB()


def to_dataset(pairs: list[dict[str, Any]], template_args: dict[str, Any] | None = None, rendered: list[dict[str, str]] | None = None):
    """TRL's vision preference dataset: images decoded by `datasets` from the paths (`read_pairs` has checked them),
    and the chat template's variables, where there are any, in TRL's `chat_template_kwargs` column; or, where
    `rendered` is given (`evaluation_prompts`), each pair's prompt and answers as the text TRL is to train on."""
    from datasets import Dataset, Image, Sequence

    if rendered is not None:
        rows = [{"images": p["images"], **texts} for p, texts in zip(pairs, rendered, strict=True)]
    else:
        extra = {"chat_template_kwargs": dict(template_args)} if template_args else {}
        rows = [{"images": p["images"], "prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"], **extra} for p in pairs]
    return Dataset.from_list(rows).cast_column("images", Sequence(Image()))


def check_chat_template(processor: Any, model: str) -> None:
    """TRL's DPO trainer renders the pairs with the model's chat template, and its collator tokenises the answers
    without images. PaliGemma's processor has no template (it builds its prompt itself) and refuses text without
    images, so such a model is refused before it loads (or, in `loop`, before the base evaluation)."""
    if not getattr(processor, "chat_template", None):
        raise TaskError(f"{model} has no chat template (its processor builds the prompt itself, as PaliGemma's does); TRL's DPO trainer "
                        "renders the pairs with a chat template, so it cannot tune this model; tune it with another trainer")


def evaluation_prompts(pairs: list[dict[str, Any]], processor: Any, template_args: dict[str, Any]) -> tuple[list[dict[str, str]] | None, str, str]:
    """How the pairs reach TRL: as conversations (None), or, where TRL would train on a prompt other than the one an
    evaluation shows, as each pair's text with the evaluation's prompt; then the first such prompt's end that TRL's
    lacks, and the way taken: `conversation`, `generation-prompt` or `conversation-differs` (recorded as `prompts`).

    TRL takes as the prompt what "prompt + generation prompt" and "prompt + answer" have in common, and as the answer
    the rest of "prompt + answer". Where a template writes an answered turn's start otherwise than its generation
    prompt, that is a context no evaluation shows: Gemma 4's generation prompt writes its reasoning channel closed and
    empty (`<|channel>thought\\n<channel|>`), its answered turns no channel; LLaVA-OneVision's ends in `assistant\\n`,
    its answered turns begin `assistant \\n`. There the pairs are given as text: the prompt is the generation prompt,
    and an answer is what the template writes from the answer's first word to the end of its turn. A generation
    prompt that leaves a reasoning block open is left to TRL (an answer written into the open block would teach the
    model to answer without closing it): `conversation-differs`, and the caller says so."""
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    from ..reasoning import opens_reasoning

    rendered, beyond, opened = [], "", False
    for pair in pairs:
        example = {"prompt": prepare_multimodal_messages(pair["prompt"], images=pair["images"]),
                   "chosen": prepare_multimodal_messages(pair["chosen"]), "rejected": prepare_multimodal_messages(pair["rejected"])}
        trl = apply_chat_template(example, processor, **template_args)
        asked = processor.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=False, **template_args)
        if asked != trl["prompt"] and not beyond:
            beyond = asked[len(trl["prompt"]):] if asked.startswith(trl["prompt"]) else asked
            opened = opens_reasoning(asked)
        rendered.append((pair, example, trl, asked))
    if not beyond:
        return None, "", "conversation"
    if opened:
        return None, beyond, "conversation-differs"
    rows: list[dict[str, str]] = []
    for pair, example, trl, asked in rendered:
        row = {"prompt": asked}
        for side in ("chosen", "rejected"):
            words = " ".join(part["text"] for message in example[side] for part in message["content"] if part["type"] == "text").strip()
            start = trl[side].find(words) if words else -1
            if start < 0:
                raise TaskError(f"pair {pair.get('id')!r}: the chat template does not write its {side} answer {words[:60]!r} as given "
                                "(it changes the text), so where the answer begins cannot be found; give the answer as the template writes it")
            row[side] = trl[side][start:]
        rows.append(row)
    return rows, beyond, "generation-prompt"


def lora_targets(model: Any, spec: str) -> str | list[str]:
    """PEFT target_modules for `spec`: "language-model" resolves to the LLM's linear layers (lm_head excluded)."""
    if spec != "language-model":
        return spec
    import torch

    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ("language_model" in n or "text_model" in n) and not n.endswith("lm_head")]
    if not names:
        raise TaskError(f"{type(model).__name__}: no linear layers under a language_model/text_model module; set lora_target_modules (e.g. all-linear)")
    return names


def dpo_arguments(cfg: TrainConfig) -> Any:
    """TRL's DPOConfig for `cfg`, built before any model loads: a value TRL refuses (a loss type it does not know,
    weights that do not match the loss types, a scheduler's name) is one error naming it, not a traceback after the
    weights are in memory (or, in `loop`, after the base evaluation)."""
    import torch
    from trl import DPOConfig

    known = _documented_loss_types(DPOConfig)
    unknown = [t for t in cfg.loss_type if known and t not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise TaskError(f"train setting loss_type: TRL's DPO has no loss type {unknown[0]!r}{hint}; it has {', '.join(known)}")
    cuda = torch.cuda.is_available()
    try:
        with library_renames_hidden():
            return DPOConfig(
                output_dir=str(Path(cfg.out) / "checkpoints"),
                beta=cfg.beta,
                learning_rate=cfg.learning_rate,
                num_train_epochs=cfg.epochs,
                max_steps=cfg.max_steps,
                per_device_train_batch_size=cfg.batch_size,
                gradient_accumulation_steps=cfg.grad_accum,
                loss_type=cfg.loss_type,
                loss_weights=cfg.loss_weights,
                max_length=None,  # truncating image tokens breaks VLM inputs
                bf16=bool(cuda and torch.cuda.is_bf16_supported()),
                use_cpu=not cuda,
                logging_steps=cfg.logging_steps,
                save_strategy="no",
                report_to=[],
                seed=cfg.seed,
                **cfg.extra,
            )
    except (ValueError, TypeError) as exc:
        raise TaskError(f"train settings: TRL's DPOConfig refuses them: {' '.join(str(exc).split())}") from None


def _documented_loss_types(dpo_config: type) -> list[str]:
    """The loss types TRL's DPOConfig lists in its `loss_type` help (TRL checks the name only in the first training
    step); empty when this TRL version words its help otherwise, and then TRL's own check is the one left."""
    import dataclasses

    help_text = next((f.metadata.get("help", "") for f in dataclasses.fields(dpo_config) if f.name == "loss_type"), "")
    return re.findall(r"`'([a-z0-9_]+)'`", help_text)


def train_dpo(cfg: TrainConfig, show_progress: bool = True) -> Path:
    """Train and save; with show_progress False nothing is printed per step (the losses still go to
    train_log.jsonl), as `--no-progress` promises for the rest of a run."""
    check_train_out(cfg)  # a wrong --out is refused at once, not after seconds of importing TRL and transformers
    from transformers import AutoModelForImageTextToText
    from trl import DPOTrainer

    from ..backends.hf_processor import load_processor
    from ..backends.hf_prompt import check_template_args

    args = dpo_arguments(cfg)
    if not show_progress:  # the weight-loading and dataset-mapping bars too
        hide_library_progress_bars()
    out = Path(cfg.out)
    pairs = read_pairs(cfg.pairs)
    processor = load_processor(cfg.model)  # as the backends load it: no torchvision needed for image pairs
    check_chat_template(processor, cfg.model)
    check_template_args(processor, cfg.chat_template_args, f"the chat template of {cfg.model}")
    rendered, beyond, prompts = evaluation_prompts(pairs, processor, cfg.chat_template_args)
    if prompts == "generation-prompt":
        warn(f"note: the chat template of {cfg.model} writes {beyond!r} in a generation prompt but not in an answered turn; the pairs "
             "go to TRL as text that starts with the evaluation's prompt, so the answers are tuned in the context an evaluation shows")
    elif prompts == "conversation-differs":
        warn(f"warning: the chat template of {cfg.model} opens a reasoning block in a generation prompt ({beyond!r}) but writes answered "
             "turns without it, so TRL tunes the answers in a context an evaluation does not show; give the model a template that "
             "writes an answered turn after a closed reasoning block, as Qwen3's does")
    dataset = to_dataset(pairs, cfg.chat_template_args, rendered)
    model = AutoModelForImageTextToText.from_pretrained(cfg.model)
    peft_config = None
    if not cfg.full:
        from peft import LoraConfig

        targets = lora_targets(model, cfg.lora_target_modules)
        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets, task_type="CAUSAL_LM")
    logger = JsonlLogger(out / "train_log.jsonl")
    try:
        with library_renames_hidden():
            trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor, peft_config=peft_config,
                                 callbacks=[logger.callback])
    except _no_matching_module() as exc:
        raise TaskError(f"lora_target_modules={cfg.lora_target_modules!r} names no module of {type(model).__name__} ({cfg.model}): "
                        "give PEFT module names or a regex that match its layers, or all-linear or language-model") from exc
    if not show_progress:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for cb in (ProgressCallback, PrinterCallback):  # the progress bar and the per-step metrics dict on stdout
            trainer.remove_callback(cb)
    with library_renames_hidden():
        trainer.train()
    trainer.save_model(str(out))
    if peft_config is not None:
        _sort_target_modules(out / "adapter_config.json")
    else:  # a whole model, written the way its family's checkpoints are published, so that vLLM loads it too
        from ..backends.vllm_layout import publish_weights

        publish_weights(out)
    processor.save_pretrained(str(out))
    checkpoints = out / "checkpoints"
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()
    atomic_write_json(out / "mmhallu_train.json", {**asdict(cfg), "n_pairs": len(pairs), "adapter": not cfg.full,
                                                   "prompts": prompts, "generation_prompt_beyond_turn": beyond})
    atomic_write_json(out / "dpo_config.json", json.loads(args.to_json_string()))
    return out


def _no_matching_module() -> tuple[type[BaseException], ...]:
    """PEFT's error for target modules that match nothing (a class of its own in recent PEFT versions)."""
    try:
        from peft.utils.error import NoMatchingPeftModuleError
    except ImportError:
        return ()
    return (NoMatchingPeftModuleError,)


#: what marks a folder as an earlier training output (a finished one has all three; an interrupted one the log)
TRAIN_MARKERS = ("mmhallu_train.json", "train_log.jsonl", "checkpoints")


def check_train_out(cfg: TrainConfig) -> None:
    """Refused before anything loads: an output folder that is the model's own folder (or inside it, or holding it),
    that holds the pairs file, or that holds anything but an earlier training output — training writes its adapter,
    processor, configs and logs there, over files of the same names."""
    out = Path(cfg.out).expanduser()
    where = folder_relation(out, cfg.model) if Path(cfg.model).expanduser().is_dir() else None
    if where:
        raise TaskError(f"--out {cfg.out} {where} the model's folder {cfg.model}: training would write its processor and configs "
                        "over the model's own files; give --out a new folder")
    if folder_relation(cfg.pairs, out) == "is inside":
        raise TaskError(f"--out {cfg.out} holds the pairs file {cfg.pairs}; give --out a folder of its own")
    refuse_foreign_folder(out, TRAIN_MARKERS, "a training output", "an earlier training output to replace")


def _sort_target_modules(config_file: Path) -> None:
    """PEFT keeps `target_modules` as a set and writes it in the set's order, which changes with Python's string
    hashing from process to process: sorted, the same training writes the same adapter folder, so its fingerprint
    (and the cache keys of every evaluation of it) is the same run after run."""
    config = json.loads(config_file.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        atomic_write_json(config_file, config)
