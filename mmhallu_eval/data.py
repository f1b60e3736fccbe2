"""Image and dataset access shared by task loaders: local image folders, in-memory images, HF datasets."""
from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from .files import atomic_write_bytes, sha256_file
from .task import TaskError
from .types import ImageLike


#: a name without `/` is one pathlib part only where `/` is the only separator
_POSIX = os.name == "posix"


def resolve_image(name: str, folder: str | Path | None) -> str:
    """Path of image `name` inside `folder` (or `name` itself when absolute/folder is None): `str(Path(folder) /
    name)`, whose exact text goes into the samples hash. A plain file name (no `/`) is joined to the folder's
    pathlib text directly, which is that very text without two `Path`s per question (a million-question file).

    Missing files are not an error here: the runner records them per sample so the run goes on.
    """
    if _POSIX and name and "/" not in name and name != ".":
        base = "." if folder is None else _folder_text(folder)
        return name if base == "." else os.path.join(base, name)
    p = Path(name)
    if folder is None or p.is_absolute():
        return str(p)
    return str(Path(folder) / p)


@lru_cache(maxsize=64)
def _folder_text(folder: str | Path) -> str:
    return str(Path(folder))


#: pixels of recently decoded images kept (bytes): requests that come back to one file soon after (POPE asks six
#: questions per image, in a row) reuse its decoded pixels instead of reading and decoding it again
DECODED_BYTES = 64 << 20
#: file contents kept from hashing (bytes) until the image is decoded: the cache key needs every image's hash before
#: generation starts, and the decode that follows uses these bytes instead of reading the file a second time
HASHED_BYTES = 64 << 20


class _Kept:
    """Values by key, the least recently used dropped beyond a byte budget, so memory stays bounded whatever the
    data. Locked: the transformers backend may decode the next batch in a worker thread."""

    def __init__(self, budget: int):
        self.budget = budget
        self.items: OrderedDict[tuple[str, int, int], tuple[Any, int]] = OrderedDict()  # key → (value, bytes)
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> Any:
        """The value kept for `key` (now the most recently used), or None."""
        with self.lock:
            kept = self.items.get(key)
            if kept is None:
                return None
            self.items.move_to_end(key)
            return kept[0]

    def pop(self, key: tuple[str, int, int]) -> Any:
        """The value kept for `key`, no longer kept, or None."""
        with self.lock:
            kept = self.items.pop(key, None)
            if kept is None:
                return None
            self.size -= kept[1]
            return kept[0]

    def put(self, key: tuple[str, int, int], value: Any, nbytes: int) -> None:
        with self.lock:
            if nbytes > self.budget or key in self.items:
                return
            self.items[key] = (value, nbytes)
            self.size += nbytes
            while self.size > self.budget:
                _, (_, freed) = self.items.popitem(last=False)
                self.size -= freed


_DECODED = _Kept(DECODED_BYTES)  # RGB images; callers get copies, so the kept pixels never change
# file bytes, each handed to one decode and then dropped; those of images never decoded (answers from the cache,
# overlap checks) wait until pushed out
_HASHED = _Kept(HASHED_BYTES)


class UnreadableImage(OSError):
    """An image file that is there but cannot be decoded (truncated, not an image): its samples fail as image_error,
    naming the file, not as a generation error."""


def open_image(image: ImageLike) -> Image.Image:
    """Load an image as RGB; a missing or unreadable file raises FileNotFoundError/OSError naming the path. A file
    decoded shortly before (same path, modification time and size) is not decoded again, and one hashed shortly
    before is decoded from the bytes the hash read: each image is read once."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    key = _file_key(image)
    if key is None:
        raise FileNotFoundError(f"missing image: {Path(image)}")
    decoded = _DECODED.get(key)
    if decoded is None:
        raw = _HASHED.pop(key)
        try:
            with Image.open(Path(image) if raw is None else io.BytesIO(raw)) as im:
                decoded = im.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # what PIL raises for a bad file
            raise UnreadableImage(f"{Path(image)}: {exc}") from exc
        _DECODED.put(key, decoded, decoded.width * decoded.height * 3)
    return decoded.copy()


def _file_key(image: str | Path) -> tuple[str, int, int] | None:
    """(absolute name, modification time, size) of a regular file, from one `stat`; None when there is none. No
    realpath: symlink spellings of one file are just two keys; abspath keeps a relative name from meaning another
    file after a chdir."""
    try:
        st = os.stat(image)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    name = os.fspath(image)
    return name if os.path.isabs(name) else os.path.abspath(name), st.st_mtime_ns, st.st_size


@lru_cache(maxsize=65536)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    if size > HASHED_BYTES:
        return sha256_file(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) == size:  # not changed since the stat that made the key
        _HASHED.put((path, mtime_ns, size), raw, size)
    return hashlib.sha256(raw).hexdigest()


#: what `image_digest` returns for a name that is not a readable file, before the name
MISSING = "missing:"


def image_digest(image: ImageLike) -> str:
    """Content hash of an image, used in cache keys and to detect train/eval overlap; `MISSING` + the name for a
    file that does not exist (or is not a regular file)."""
    if isinstance(image, Image.Image):
        h = hashlib.sha256(f"{image.mode}:{image.size}".encode())
        h.update(image.tobytes())
        return h.hexdigest()
    key = _file_key(image)  # one stat per request
    return f"{MISSING}{Path(image)}" if key is None else _file_digest(*key)


def option_flags(option: str) -> str:
    """A task option (`TASK.KEY`) with the flags that set it, for errors that tell a user where a local file goes."""
    task, _, key = option.partition(".")
    return f"{option} (`mmhallu score {task} --{key} ...`, `mmhallu run --task-arg {option}=...`)"


def missing_files(paths: Iterable[Any]) -> tuple[set[str], list[str]]:
    """(the distinct file names, those not there, sorted): each file looked up once however often it is named."""
    named = {str(p) for p in paths}
    return named, sorted(p for p in named if not os.path.isfile(p))


def load_hf_dataset(name: str, split: str | None = None, option: str | None = None, **kwargs: Any) -> Any:
    """Load a hub dataset (or its local cache), or a folder written by `Dataset.save_to_disk`.

    Offline failures get an actionable message instead of a stack of HTTP errors; `option` (`TASK.KEY`) is the task
    option that names the data, so the message can say where local files go.
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
        where = ("point the task at local files instead" if option is None
                 else f"pass hf:DIR, or the benchmark's own files, as {option_flags(option)}")
        raise TaskError(
            f"could not load the HF dataset {name!r} (split={split!r}): {type(exc).__name__}: {exc}. Without network access, save "
            f"it on a machine with one (`datasets.load_dataset({name!r}, split={split!r}).save_to_disk(DIR)`) and {where}."
        ) from exc


def cache_root() -> Path:
    """Where downloaded benchmark files are kept: $MMHALLU_CACHE, else ~/.cache/mmhallu-eval."""
    return Path(os.environ.get("MMHALLU_CACHE") or Path.home() / ".cache" / "mmhallu-eval")


def pinned_file(url: str, sha256: str, name: str, option: str, local: str = "the local copy") -> Path:
    """A published file at a fixed commit, downloaded once into `cache_root()/name` and checked against its
    SHA-256 (a changed or truncated download is an error, never data). `option` is the task option (`TASK.KEY`)
    that takes `local` instead, named in the error a machine without network gets."""
    path = cache_root() / name
    if path.is_file() and sha256_file(path) == sha256:
        return path
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as reply:  # noqa: S310 - a fixed https URL
            body = reply.read()
    except OSError as exc:
        raise TaskError(f"could not download {url} ({exc}). Without network access, download it elsewhere and either "
                        f"put it at {path} (checked against its SHA-256) or pass {local} as {option_flags(option)}") from None
    digest = hashlib.sha256(body).hexdigest()
    if digest != sha256:
        raise TaskError(f"{url}: SHA-256 {digest} is not the pinned {sha256}; the file changed upstream, pass a local copy")
    atomic_write_bytes(path, body)
    return path
