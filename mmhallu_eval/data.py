"""Image and dataset access shared by task loaders: local image folders, in-memory images, HF datasets."""
from __future__ import annotations

import hashlib
import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from .files import sha256_file
from .task import TaskError
from .types import ImageLike


def resolve_image(name: str, folder: str | Path | None) -> str:
    """Path of image `name` inside `folder` (or `name` itself when absolute/folder is None).

    Missing files are not an error here: the runner records them per sample so the run goes on.
    """
    p = Path(name)
    if folder is None or p.is_absolute():
        return str(p)
    return str(Path(folder) / p)


def open_image(image: ImageLike) -> Image.Image:
    """Load an image as RGB; a missing or unreadable file raises FileNotFoundError/OSError naming the path."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    path = Path(image)
    if not path.is_file():
        raise FileNotFoundError(f"missing image: {path}")
    with Image.open(path) as im:
        return im.convert("RGB")


@lru_cache(maxsize=65536)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def image_digest(image: ImageLike) -> str:
    """Content hash of an image, used in cache keys and to detect train/eval overlap."""
    if isinstance(image, Image.Image):
        h = hashlib.sha256(f"{image.mode}:{image.size}".encode())
        h.update(image.tobytes())
        return h.hexdigest()
    path = Path(image)
    try:
        st = path.stat()
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        return f"missing:{path}"
    # one stat per request and no realpath (symlink spellings of one file just hash it twice); abspath keeps a
    # relative name from meaning another file after a chdir
    return _file_digest(os.path.abspath(path), st.st_mtime_ns, st.st_size)


def image_missing(image: ImageLike) -> str | None:
    """The path of a missing image file, or None when the image is available."""
    if isinstance(image, Image.Image):
        return None
    return None if Path(image).is_file() else str(image)


def load_hf_dataset(name: str, split: str | None = None, **kwargs: Any) -> Any:
    """Load a hub dataset (or its local cache), or a folder written by `Dataset.save_to_disk`.

    Offline failures get an actionable message instead of a stack of HTTP errors.
    """
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise TaskError("the `datasets` package is needed to load hub datasets: pip install datasets") from exc
    local = Path(name)
    if local.is_dir() and any((local / f).exists() for f in ("dataset_info.json", "dataset_dict.json")):
        ds = datasets.load_from_disk(name)
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise TaskError(f"{name}: no split {split!r} (has {', '.join(ds)})")
            ds = ds[split]
        return ds
    try:
        return datasets.load_dataset(name, split=split, **kwargs)
    except Exception as exc:
        raise TaskError(
            f"could not load the HF dataset {name!r} (split={split!r}): {type(exc).__name__}: {exc}. "
            "Without network access, download it elsewhere and point the task at local files instead."
        ) from exc
