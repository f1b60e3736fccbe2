"""File helpers shared by loaders and result writers: JSON(L) with line-precise errors, atomic writes."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from .outputs import TEMP_SUFFIX, temp_prefix
from .task import TaskError

T = TypeVar("T")


def _decode(raw: bytes, path: Path, line: int | None = None) -> str:
    """UTF-8 (a byte-order mark is dropped), else an error naming the file and line and what to do."""
    try:
        return raw.decode("utf-8-sig" if line in (None, 1) else "utf-8")
    except UnicodeDecodeError as exc:
        where = line if line is not None else raw[: exc.start].count(b"\n") + 1
        raise TaskError(f"{path}:{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8") from None


def read_text(path: str | Path) -> str:
    """A text file as UTF-8 (BOM dropped); a missing file or other encoding is a clear error."""
    path = Path(path)
    _must_be_file(path)
    return _decode(path.read_bytes(), path)


def _must_be_file(path: Path) -> None:
    if path.is_dir():
        raise TaskError(f"{path}: a folder, where a file is expected; name the file inside it")
    if not path.is_file():
        raise TaskError(f"{path}: file not found")


def recorded_cwd(path: str | Path) -> str | None:
    """The folder the writer of a JSON record file ran in (its `cwd`: a run manifest, a pairs.meta.json), where the
    relative file names of the records it describes are relative to; None where the file or the entry is missing."""
    path = Path(path)
    if not path.is_file():
        return None
    found = read_json(path)
    cwd = found.get("cwd") if isinstance(found, dict) else None
    return cwd if isinstance(cwd, str) and cwd else None


def written_from(name: str, folder: str | Path | None) -> str:
    """A file name a record holds, read as its writer meant it: a relative name is relative to the folder the writer
    ran in (`folder`, e.g. a run manifest's `cwd`), so it is given under that folder when it is not the current one
    and the file is there; otherwise the name as it is (a record without a folder, or moved with its files)."""
    if folder is None or Path(name).is_absolute():
        return name
    there = Path(folder) / name
    if Path(folder).resolve() == Path.cwd().resolve() or not there.is_file():
        return name
    return str(there)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line, streaming; a malformed line names file and line."""
    path = Path(path)
    _must_be_file(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path}:{lineno}: not valid JSON ({exc.msg}); fix or remove that line") from None
            except RecursionError:
                raise TaskError(f"{path}:{lineno}: JSON nested too deeply to read") from None
            if not isinstance(obj, dict):
                raise TaskError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_json(path: str | Path) -> Any:
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise TaskError(f"{path}: JSON nested too deeply to read") from None


def require_fields(obj: dict[str, Any], fields: Iterable[str], where: str, text: Iterable[str] = ()) -> None:
    """Fields present, and those in `text` strings (a null or a number where text belongs is an error, not "None")."""
    missing = [f for f in fields if f not in obj]
    if missing:
        raise TaskError(f"{where}: missing field(s) {', '.join(missing)}")
    wrong = [f for f in text if not isinstance(obj.get(f), str)]
    if wrong:
        raise TaskError(f"{where}: field(s) {', '.join(wrong)} must be text (got {', '.join(type(obj.get(f)).__name__ for f in wrong)})")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """`atomic_write_text` for bytes (downloaded files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new temp file in `path`'s folder, named as `outputs.is_temp_of` knows it, with a new file's permissions."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


class JsonlWriter:
    """A JSONL file written row by row into a temp file beside it and renamed into place by `commit`, so readers never
    see half a file and rows can be written as they become known (`mmhallu run` writes each answer's record while
    the engine works on the rest). `each(row)` sees every row as it is written. Leaving the `with` block without a
    commit removes the temp file, and the folder it made for it if that is left empty."""

    def __init__(self, path: str | Path, each: Callable[[dict[str, Any]], None] | None = None):
        self.path = Path(path)
        self.each = each
        self._made = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = _temp_beside(self.path)
        self._fh = os.fdopen(fd, "w", encoding="utf-8")
        self._done = False

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.discard()

    def write(self, row: dict[str, Any]) -> None:
        try:
            line = encode(row)
        except (TypeError, ValueError) as exc:  # a set, an object, a circular value: named, not a traceback
            raise TaskError(f"{self.path}: the row of {row.get('id')!r} cannot be written as JSON ({exc}); its values must be text, "
                            "numbers, true/false, null, lists or objects (a task's scorer returns such values)") from None
        self._fh.write(line + "\n")
        if self.each is not None:
            self.each(row)

    def commit(self, meanwhile: Callable[[], T] | None = None) -> T | None:
        """Sync and rename into place. `meanwhile()` runs while the rows go to disk (fsync waits without the GIL) and
        its result is returned; the file is renamed into place before an error of `meanwhile` is raised, as if it had
        run after the write."""
        result: T | None = None
        error: BaseException | None = None
        try:
            with self._fh as fh:
                fh.flush()
                if meanwhile is None:
                    os.fsync(fh.fileno())
                else:
                    with ThreadPoolExecutor(max_workers=1) as pool:
                        synced = pool.submit(os.fsync, fh.fileno())
                        try:
                            result = meanwhile()
                        except BaseException as exc:  # noqa: BLE001 - raised below, once the rows are safely in place
                            error = exc
                        synced.result()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise
        self._done = True
        if error is not None:
            raise error
        return result

    def discard(self) -> None:
        self._done = True
        self._fh.close()
        Path(self._tmp).unlink(missing_ok=True)
        if self._made:
            try:
                self.path.parent.rmdir()
            except OSError:  # something else was written there meanwhile: not the writer's to remove
                pass


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]], each: Callable[[dict[str, Any]], None] | None = None,
                       meanwhile: Callable[[], T] | None = None) -> T | None:
    """One JSON line per row, streamed to a temp file then renamed (`JsonlWriter`); `each(row)` sees every row as it
    is written, `meanwhile()` runs while they go to disk and its result is returned."""
    with JsonlWriter(path, each) as out:
        for row in rows:
            out.write(row)
        return out.commit(meanwhile)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_encoder(sort_keys: bool = False, default: Callable[[Any], Any] | None = None, ensure_ascii: bool = False) -> Callable[[Any], str]:
    """`json.dumps(obj, ensure_ascii=ensure_ascii, sort_keys=sort_keys, default=default)` as a function for hot paths
    (a samples.jsonl line, a cache key, a checksum, a sample's part of a task's hash: one per request).
    `JSONEncoder.encode` builds the standard library's C encoder afresh on every call, about as long as encoding a
    short record takes; this builds it once. There is no circular-reference check (the objects are records and
    parsed JSON, never circular). Where the C encoder is missing or does not give `json.dumps`'s text,
    `JSONEncoder.encode` itself."""
    encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, sort_keys=sort_keys, default=default)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    try:
        strings = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
        built = make(None, encoder.default, strings, None, encoder.key_separator, encoder.item_separator,
                     sort_keys, False, True)
    except TypeError:  # another signature in another Python
        return encoder.encode

    def encode(obj: Any) -> str:
        return "".join(built(obj, 0))

    probe = {"b": [1, -2.5, None, True, float("nan"), "é\n\"\u2028"], "a": {"z": 0, "y": []}, "": "x"}
    return encode if encode(probe) == encoder.encode(probe) else encoder.encode


#: `json.dumps(row, ensure_ascii=False, default=_json_default)` (a samples.jsonl line each)
encode = json_encoder(default=_json_default)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
