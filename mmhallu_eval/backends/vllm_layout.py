"""Weight names vLLM cannot map. transformers 5 saves the CLIP or SigLIP tower of a LLaVA, LLaVA-NeXT,
LLaVA-OneVision, Gemma 3 or PaliGemma model as `vision_tower.embeddings...` (or `model.vision_tower.embeddings...`);
vLLM's loaders for them (0.26 to 0.33 at least) expect the layout of the published checkpoints,
`vision_tower.vision_model.embeddings...`, and fail deep inside engine start-up ("There is no module or parameter
named 'vision_tower.embeddings'"). The check runs before vLLM starts; the fix renames the keys in place
(transformers loads either layout to the same weights)."""
from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_write_json, read_json
from .base import BackendError

#: architectures whose vLLM loader wants `vision_tower.vision_model.*` for a CLIP or SigLIP tower
_NESTED_TOWER_ARCHS = {"LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration", "LlavaOnevisionForConditionalGeneration",
                       "Gemma3ForConditionalGeneration", "PaliGemmaForConditionalGeneration"}
#: the towers that nest their weights under `vision_model` in the published layout (the config's default is CLIP)
_TOWERS = {"clip_vision_model", "siglip_vision_model"}
_PREFIXES = ("model.vision_tower.", "vision_tower.")


def _needs_published_tower_keys(folder: Path) -> bool:
    """Whether the folder's config names one of those architectures with a CLIP or SigLIP tower. A folder without a
    config.json is not judged here; a damaged one is named (it said "nothing to rename" before)."""
    path = folder / "config.json"
    if not path.is_file():
        return False
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path}: not a readable JSON config ({exc}); download or save the model again") from None
    if not isinstance(cfg, dict):
        raise BackendError(f"{path}: not a model config (a JSON object); download or save the model again")
    architectures, vision = cfg.get("architectures"), cfg.get("vision_config")
    names = {a for a in architectures if isinstance(a, str)} if isinstance(architectures, list) else set()
    tower = vision.get("model_type", "clip_vision_model") if isinstance(vision, dict) else "clip_vision_model" if vision is None else None
    return bool(_NESTED_TOWER_ARCHS & names) and tower in _TOWERS


def _published(key: str) -> str:
    """The published name of one weight: `vision_tower.X` → `vision_tower.vision_model.X` (other keys unchanged)."""
    for prefix in _PREFIXES:
        if key.startswith(prefix) and not key[len(prefix):].startswith("vision_model."):
            return prefix + "vision_model." + key[len(prefix):]
    return key


def unpublished_tower_keys(model: str | Path) -> list[str]:
    """The vision-tower weight names in MODEL's safetensors files that vLLM cannot map (empty when there is nothing to
    fix, or MODEL is not a local folder of one of those architectures with a CLIP or SigLIP tower). Reads the files' headers only."""
    from safetensors import SafetensorError, safe_open

    folder = Path(model)
    if not folder.is_dir() or not _needs_published_tower_keys(folder):
        return []
    keys: list[str] = []
    for f in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as fh:
                keys += [k for k in fh.keys() if _published(k) != k]
        except (SafetensorError, OSError) as exc:
            raise BackendError(f"{f}: not a readable safetensors file ({exc}); download or save the model again") from None
    return keys


def publish_tower_keys(model: str | Path) -> int:
    """Rename MODEL's vision-tower weights to the published layout, in place (safetensors files and their index).
    Returns how many weights were renamed; 0 leaves every file untouched."""
    from safetensors.torch import load_file, save_file

    folder = Path(model)
    if not unpublished_tower_keys(folder):
        return 0
    index = folder / "model.safetensors.index.json"
    data = read_json(index) if index.exists() else None  # read first: a damaged index stops the fix before any file changes
    if data is not None and not (isinstance(data, dict) and isinstance(data.get("weight_map", {}), dict)):
        raise BackendError(f"{index}: not a safetensors index (no \"weight_map\" object); download or save the model again")
    renamed = 0
    for f in sorted(folder.glob("*.safetensors")):
        state = load_file(str(f))
        new = {_published(k): v for k, v in state.items()}
        changed = sum(1 for old, k in zip(state, new) if old != k)
        if changed:
            tmp = f.with_name(f.name + ".tmp")
            save_file(new, str(tmp), metadata={"format": "pt"})
            tmp.replace(f)  # a crash mid-write leaves the original file whole
            renamed += changed
    if data is not None:
        data["weight_map"] = {_published(k): v for k, v in data.get("weight_map", {}).items()}
        atomic_write_json(index, data)
    return renamed
