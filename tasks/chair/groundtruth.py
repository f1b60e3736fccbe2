"""Ground-truth objects per image, as the original CHAIR builds them: COCO instance categories (read with
pycocotools) ∪ objects found in the image's reference captions by the same normalisation.

Built only for the images asked for and cached as JSON beside nothing the user owns
(`~/.cache/mmhallu-eval/chair/`), keyed by the annotation files' hashes and the synonym list."""
from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path
from typing import Iterable

from mmhallu_eval import TaskError, atomic_write_json, cache_root, check_coco_captions, check_coco_instances, read_json

from .normalize import Normalizer


def cache_dir() -> Path:
    return cache_root() / "chair"


def annotation_files(folder: Path, kind: str) -> list[Path]:
    files = sorted(folder.glob(f"{kind}_*.json"))
    if not files:
        raise TaskError(f"{folder}: no {kind}_*.json (COCO annotations, e.g. {kind}_val2014.json); run scripts/prepare_coco.py")
    return files


def _load_coco(path: Path, kind: str):
    """pycocotools' index of an instances or captions file, after checking what CHAIR reads of it (pycocotools
    itself fails with a bare KeyError on a damaged file, or reads one without annotations as empty)."""
    from pycocotools.coco import COCO

    data = read_json(path)
    if kind == "instances":
        check_coco_instances(data, path)
    else:
        _check_captions(data, path)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _check_captions(data: object, path: Path) -> None:
    """The captions, and the images they are indexed by (pycocotools reads a file without images as no captions)."""
    check_coco_captions(data, path)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not all(isinstance(im, dict) and "id" in im for im in images):
        raise TaskError(f"{path}: a COCO captions file needs \"images\", each with an id")


def _fingerprint(files: list[Path], synonyms_key: str) -> str:
    h = hashlib.sha256(synonyms_key.encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def images_with_instances(folder: Path) -> dict[int, str]:
    """image_id → file_name for every image that has at least one instance annotation."""
    out: dict[int, str] = {}
    for path in annotation_files(folder, "instances"):
        coco = _load_coco(path, "instances")
        for img_id in coco.getImgIds():
            if coco.getAnnIds(imgIds=[img_id]):
                out[img_id] = coco.imgs[img_id]["file_name"]
    return out


def build_ground_truth(folder: Path, image_ids: Iterable[int], normalizer: Normalizer, synonyms_key: str) -> dict[int, list[str]]:
    """Ground-truth categories for `image_ids`, from a JSON cache when the same files were used before."""
    wanted = sorted(set(int(i) for i in image_ids))
    files = annotation_files(folder, "instances") + annotation_files(folder, "captions")
    cache_file = cache_dir() / f"gt_{_fingerprint(files, synonyms_key)}.json"
    cached: dict[str, list[str]] = read_json(cache_file) if cache_file.exists() else {}
    todo = [i for i in wanted if str(i) not in cached]
    if todo:
        found: dict[int, set[str]] = {i: set() for i in todo}
        todo_set = set(todo)
        to_category = normalizer.vocab.to_category
        for path in annotation_files(folder, "instances"):
            coco = _load_coco(path, "instances")
            names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
            here = [i for i in todo if i in coco.imgs]
            if not here:  # pycocotools treats an empty id list as "all images"
                continue
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=here)):
                name = names[ann["category_id"]]
                if name not in to_category:
                    raise TaskError(f"{path}: category {name!r} is not in the CHAIR synonyms list; pass a synonyms file that has it")
                found[ann["image_id"]].add(to_category[name])
        for path in annotation_files(folder, "captions"):
            coco = _load_coco(path, "captions")
            here = [i for i in todo if i in coco.imgs]
            if not here:
                continue
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=here)):
                if ann["image_id"] in todo_set:
                    found[ann["image_id"]].update(normalizer.caption_words(ann["caption"]).categories)
        cached.update({str(i): sorted(v) for i, v in found.items()})
        atomic_write_json(cache_file, cached)
        normalizer.lemmas.save()
    return {i: cached[str(i)] for i in wanted}


def load_gt_json(path: Path, normalizer: Normalizer) -> dict[int, list[str]]:
    """A JSON mapping image_id → COCO category names (or synonyms, mapped to their category)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise TaskError(f"{path}: expected a JSON object image_id → list of object names")
    out: dict[int, list[str]] = {}
    for key, names in data.items():
        try:
            image_id = int(key)
        except ValueError:
            raise TaskError(f"{path}: image id {key!r} is not an integer") from None
        unknown = [n for n in names if n not in normalizer.vocab.to_category]
        if unknown:
            raise TaskError(f"{path}: image {key}: unknown object name(s) {', '.join(map(repr, unknown))}")
        out[image_id] = sorted({normalizer.vocab.to_category[n] for n in names})
    return out
