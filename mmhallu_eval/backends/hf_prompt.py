"""The prompt a model sees, built by its own processor: `apply_chat_template(tokenize=True)` with the images in the
messages, exactly as transformers documents it, so no backend re-tokenises rendered text on its own terms (which
gives Gemma 3, Mllama, Aya Vision and Mistral 3 a second BOS). Checkpoints without a chat template use the prompt
format their processor documents (PaliGemma's), or one the user gives (`--chat-template FILE`)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import open_image
from ..files import read_text
from ..reasoning import opens_reasoning
from ..types import Request
from .base import BackendError

#: families whose processor builds the documented prompt from plain text when there is no chat template
PROCESSOR_PROMPT_FAMILIES = {"paligemma": "PaliGemma: the processor writes <image>×n, <bos>, the prompt and a newline"}
_PROBE = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is there a cat in the image?"}]}]


@dataclass(frozen=True)
class PromptFormat:
    """How prompts are built for one checkpoint; written into the run manifest."""

    kind: str  # "chat_template" or "processor"
    source: str  # "checkpoint", "file:<path>" or the family whose processor documents the format
    #: the generation prompt opens a <think> block (Qwen3-VL-Thinking): the answer follows the model's </think>
    opens_reasoning: bool = False
    #: variables the chat template is rendered with (`--chat-template-arg`, e.g. enable_thinking=false)
    template_args: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "source": self.source, "opens_reasoning": self.opens_reasoning}
        if self.kind == "processor":
            out["format"] = PROCESSOR_PROMPT_FAMILIES.get(self.source, "")
        if self.template_args:
            out["template_args"] = dict(self.template_args)
        return out


def _has_template(processor: Any) -> bool:
    tokenizer = getattr(processor, "tokenizer", processor)
    return bool(getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None))


def _render_probe(processor: Any, template_name: str, way_on: str, **template: Any) -> Any:
    """A user turn with an image rendered by the template, or one line naming it, where it fails and `way_on`."""
    try:
        return processor.apply_chat_template(_PROBE, add_generation_prompt=True, tokenize=False, **template)
    except Exception as exc:  # noqa: BLE001 - jinja raises many types; all mean "this template does not render"
        where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        raise BackendError(f"{template_name} does not render a user turn with an image{where}: {type(exc).__name__}: {exc}{way_on}") from None


def prompt_format(processor: Any, model: str, model_type: str, chat_template: str | Path | None = None,
                  template_args: Mapping[str, Any] | None = None) -> PromptFormat:
    """Choose (and for a user file, install and check) the prompt format, or refuse with what to do."""
    args = dict(template_args or {})
    if chat_template is not None:
        path = Path(chat_template)
        if not path.is_file():
            raise BackendError(f"--chat-template {path}: file not found")
        template = read_text(path)  # UTF-8 (BOM dropped); another encoding is named, not a UnicodeDecodeError
        check_template_args(processor, args, f"--chat-template {path}", template)
        text = _render_probe(processor, f"--chat-template {path}", "", chat_template=template, **args)
        if not isinstance(text, str) or "cat" not in text:
            raise BackendError(f"--chat-template {path} renders no text for a user turn (got {text!r})")
        processor.chat_template = template
        return PromptFormat("chat_template", f"file:{path}", opens_reasoning(text), args)
    if _has_template(processor):
        name = f"the chat template of {model}"
        check_template_args(processor, args, name)
        text = _render_probe(processor, name, "; fix the checkpoint's template, or give one with --chat-template FILE", **args)
        return PromptFormat("chat_template", "checkpoint", opens_reasoning(text), args)
    if args:
        raise BackendError(f"--chat-template-arg: {model} has no chat template to pass {', '.join(args)} to")
    if model_type in PROCESSOR_PROMPT_FAMILIES:
        return PromptFormat("processor", model_type)
    raise BackendError(
        f"{model} has no chat template and transformers documents no prompt format for its family ({model_type or 'unknown'}): "
        "give the template the model was trained with, --chat-template FILE (a Jinja file)"
    )


#: what transformers itself passes to every chat template
_TEMPLATE_OWN = {"messages", "add_generation_prompt", "tools", "documents", "continue_final_message", "bos_token", "eos_token",
                 "pad_token", "unk_token", "raise_exception", "strftime_now"}


def _template_source(processor: Any) -> str:
    """The processor's chat template (the default one where a checkpoint names several), else its tokenizer's."""
    tokenizer = getattr(processor, "tokenizer", processor)
    template = getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), "")
    return template if isinstance(template, str) else ""


def check_template_args(processor: Any, args: Mapping[str, Any], name: str, template: str | None = None) -> None:
    """Each argument is a variable the chat template reads (`template`, else the processor's own, which training
    renders its pairs with too): Jinja passes over one it does not know, so a misspelt `enable_thinkng` would silently
    leave the prompt as it was."""
    if not args:
        return
    import jinja2
    from jinja2 import meta

    source = _template_source(processor) if template is None else template
    try:
        reads = meta.find_undeclared_variables(jinja2.Environment(extensions=["jinja2.ext.loopcontrols"]).parse(source)) - _TEMPLATE_OWN
    except jinja2.TemplateSyntaxError:
        return  # a tag of transformers' own ({% generation %}), or an error the render below names
    unknown = [key for key in args if key not in reads]
    if unknown:
        known = ", ".join(sorted(reads)) or "none besides the messages"
        raise BackendError(f"--chat-template-arg {unknown[0]}: {name} reads no variable of that name (the variables it reads: {known})")


def with_images(request: Request) -> list[dict[str, Any]]:
    """The request's messages with each image placeholder carrying its decoded image, as processors take them."""
    images = iter(request.images)
    out = []
    for message in request.messages:
        content = message["content"]
        if isinstance(content, str):
            out.append(dict(message))
            continue
        parts = [{**part, "image": open_image(next(images))} if part.get("type") == "image" else dict(part) for part in content]
        out.append({**message, "content": parts})
    return out


def prompt_text(request: Request) -> str:
    """The text parts of a request, for formats where the processor writes the rest (PaliGemma)."""
    return "".join(part.get("text", "") for m in request.messages for part in (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}])
                   if part.get("type", "text") == "text")


def encode(processor: Any, fmt: PromptFormat, requests: list[Request]) -> Any:
    """One left-padded batch (BatchFeature of tensors) exactly as the processor builds it for these requests."""
    if fmt.kind == "processor":
        images = [[open_image(im) for im in r.images] for r in requests]
        kwargs: dict[str, Any] = {"text": [prompt_text(r) for r in requests], "padding": True, "return_tensors": "pt"}
        if any(images):
            kwargs["images"] = images
        return processor(**kwargs)
    return processor.apply_chat_template([with_images(r) for r in requests], add_generation_prompt=True, tokenize=True, return_dict=True,
                                         return_tensors="pt", processor_kwargs={"padding": True}, **fmt.template_args)


def render(processor: Any, fmt: PromptFormat, requests: list[Request]) -> list[tuple[str, bool]]:
    """(prompt text, whether the tokenizer should add its special tokens) per request, for engines that tokenise text
    themselves (vLLM): transformers' own rule — a rendered prompt that already starts with BOS gets no second one.
    One `apply_chat_template` call for the whole list (the same text per conversation, a quarter less time per
    request than one call each)."""
    if fmt.kind == "processor":
        return [(prompt_text(r), True) for r in requests]
    if not requests:
        return []
    texts = processor.apply_chat_template([r.messages for r in requests], add_generation_prompt=True, tokenize=False, **fmt.template_args)
    bos = getattr(getattr(processor, "tokenizer", processor), "bos_token", None)
    return [(text, not (bos is not None and text.startswith(bos))) for text in texts]
