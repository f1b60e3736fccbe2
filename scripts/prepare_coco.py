#!/usr/bin/env python
"""Prepare COCO 2014 annotations (and optionally val2014 images) for the CHAIR and POPE tasks.

    python scripts/prepare_coco.py --out data/coco            # download (needs internet), then verify
    python scripts/prepare_coco.py --out data/coco --verify   # only check files you already have

Verification loads each annotation file with pycocotools and checks the image counts of the official release
(val2014: 40,504 images; train2014: 82,783), and that every annotated val image exists when --images is given.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import urllib.request
import zipfile
from pathlib import Path

from mmhallu_eval.files import atomic_write_bytes

ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval2014.zip"
VAL_IMAGES_URL = "http://images.cocodataset.org/zips/val2014.zip"
EXPECTED_IMAGES = {"val2014": 40504, "train2014": 82783}
FILES = ("instances_val2014.json", "captions_val2014.json", "instances_train2014.json", "captions_train2014.json")


def download(url: str, dest: Path) -> None:
    """Into DEST.part, renamed when complete: an interrupted download is never taken for a finished one."""
    print(f"downloading {url} → {dest}")
    part = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url) as response, part.open("wb") as fh:
        while block := response.read(1 << 20):
            fh.write(block)
    part.replace(dest)


def fetch(out: Path, with_images: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "annotations_trainval2014.zip"
    if not all((out / f).exists() for f in FILES):
        download(ANNOTATIONS_URL, archive)
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if Path(member).name in FILES:  # written whole or not at all: a later run skips files that exist
                    atomic_write_bytes(out / Path(member).name, zf.read(member))
        archive.unlink()
    if with_images and not (out / "val2014").is_dir():
        images = out / "val2014.zip"
        download(VAL_IMAGES_URL, images)
        with zipfile.ZipFile(images) as zf:
            zf.extractall(out)
        images.unlink()


def verify(out: Path, images: Path | None) -> list[str]:
    from pycocotools.coco import COCO

    problems = []
    for name in FILES:
        path = out / name
        if not path.exists():
            problems.append(f"{path}: missing" + (" (train files are optional for CHAIR on val2014)" if "train" in name else ""))
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                coco = COCO(str(path))
        except (ValueError, KeyError, TypeError, AssertionError) as exc:  # not JSON, or not COCO's layout (pycocotools asserts a dict)
            problems.append(f"{path}: not a COCO annotation file ({type(exc).__name__}: {exc}); delete it and run without --verify to download it again")
            continue
        split = name.split("_")[1].removesuffix(".json")
        n = len(coco.getImgIds())
        status = "ok" if n == EXPECTED_IMAGES[split] else f"expected {EXPECTED_IMAGES[split]} images"
        print(f"{name}: {n} images, {len(coco.getAnnIds())} annotations — {status}")
        if n != EXPECTED_IMAGES[split]:
            problems.append(f"{path}: {n} images, {status}")
        if images and name == "instances_val2014.json":
            absent = [img["file_name"] for img in coco.imgs.values() if not (images / img["file_name"]).exists()]
            if absent:
                problems.append(f"{images}: {len(absent)} val2014 images missing (first: {', '.join(absent[:3])}); "
                                "delete the folder and run with --with-images to download them again")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--verify", action="store_true", help="do not download; only check the files in --out")
    ap.add_argument("--with-images", action="store_true", help="also download val2014 images (6.2 GB)")
    ap.add_argument("--images", type=Path, help="folder of val2014 images to check (default OUT/val2014 if present)")
    args = ap.parse_args()
    if not args.verify:
        fetch(args.out, args.with_images)
    images = args.images or (args.out / "val2014" if (args.out / "val2014").is_dir() else None)
    problems = [p for p in verify(args.out, images) if "optional" not in p]
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
