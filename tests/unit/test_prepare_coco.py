"""scripts/prepare_coco.py --verify on files a user already has: counts read with pycocotools, a file of the wrong
size or a damaged one named with what to do, missing val2014 images counted; a download is never taken for
finished before it is complete."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scripts_module import SCRIPTS, load_script

SCRIPT = SCRIPTS / "prepare_coco.py"


@pytest.fixture
def prepare_coco():
    return load_script("prepare_coco")


def _coco(path: Path, n_images: int, split: str = "val2014") -> None:
    images = [{"id": i, "file_name": f"COCO_{split}_{i:012d}.jpg", "width": 8, "height": 8} for i in range(1, n_images + 1)]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0} for i in range(1, n_images + 1)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "dog"}]}))


def test_verify_reads_the_counts_and_names_missing_images(prepare_coco, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prepare_coco, "EXPECTED_IMAGES", {"val2014": 3, "train2014": 2})
    for name in prepare_coco.FILES:
        _coco(tmp_path / name, 3 if "val" in name else 2, name.split("_")[1].removesuffix(".json"))
    images = tmp_path / "val2014"
    images.mkdir()
    (images / "COCO_val2014_000000000001.jpg").write_bytes(b"")
    assert prepare_coco.verify(tmp_path, None) == []
    assert "instances_val2014.json: 3 images, 3 annotations — ok" in capsys.readouterr().out
    (problem,) = prepare_coco.verify(tmp_path, images)
    assert problem.startswith(f"{images}: 2 val2014 images missing (first: COCO_val2014_000000000002.jpg") and "--with-images" in problem


def test_verify_names_a_file_of_the_wrong_size_or_a_damaged_one(tmp_path):
    _coco(tmp_path / "instances_val2014.json", 3)
    (tmp_path / "captions_val2014.json").write_text('{"images": [')  # cut short
    (tmp_path / "instances_train2014.json").write_text("[]")
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--verify"], capture_output=True, text=True)
    assert done.returncode == 1
    assert f"problem: {tmp_path / 'instances_val2014.json'}: 3 images, expected 40504 images" in done.stderr
    for name in ("captions_val2014.json", "instances_train2014.json"):
        assert f"problem: {tmp_path / name}: not a COCO annotation file (" in done.stderr and "delete it and run without --verify" in done.stderr
    assert "captions_train2014.json" not in done.stderr  # the train files are optional for CHAIR on val2014
    assert "Traceback" not in done.stderr


def test_an_interrupted_download_leaves_no_file_of_that_name(prepare_coco, tmp_path, monkeypatch):
    class Cut:
        def __init__(self):
            self.blocks = [b"x" * 10]

        def read(self, _n):
            if self.blocks:
                return self.blocks.pop()
            raise ConnectionResetError("connection reset")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(prepare_coco.urllib.request, "urlopen", lambda url: Cut())
    with pytest.raises(ConnectionResetError):
        prepare_coco.download("http://example.invalid/a.zip", tmp_path / "a.zip")
    assert not (tmp_path / "a.zip").exists()
