"""A model as a user's own save writes it: loaded, then saved whole by transformers, with the processor's files
beside it (what a merged or fully tuned model folder holds)."""
import shutil
from pathlib import Path


def saved_by_transformers(model: Path, out: Path) -> Path:
    from transformers import AutoModelForImageTextToText

    AutoModelForImageTextToText.from_pretrained(model).save_pretrained(out)
    for f in model.iterdir():
        if not (out / f.name).exists():
            shutil.copy(f, out / f.name)
    return out
