"""RePOPE data: the relabelled `coco_repope_<split>.json` files (or any POPE-format label files), pinned downloads of
the published ones, and the questions RePOPE removed (present in the POPE file beside a RePOPE file, absent from it)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mmhallu_eval import Sample, TaskError, TaskOptions, iter_jsonl, opt, pinned_file

from mmhallu_tasks.pope.loaders import load_question_file, split_from_filename

#: github.com/YanNeu/RePOPE at the commit the published RePOPE numbers use
COMMIT = "bcf22e5690d587cce34e1728af3efdcfaf747d29"
URL = f"https://raw.githubusercontent.com/YanNeu/RePOPE/{COMMIT}/annotations/{{name}}"
SHA256 = {
    "coco_pope_adversarial.json": "85436f0517a167e8034013458d47507ea75b89da7853d380f13530399f7d4018",
    "coco_pope_popular.json": "f31727768b228d0409a3ffe86b808958c05c26b5db4d593b137b14a2ec45ac98",
    "coco_pope_random.json": "196144ab005fcd23af78c7b11d7c110dbbc4ed17e361e05e11a927c8856cfde2",
    "coco_repope_adversarial.json": "8c346dbb060bf422ff92e769fa68e5ab3e8a777cb28a26e973387441e05c9ccf",
    "coco_repope_popular.json": "57832b055bae5fd6176278a4f104c98ddd84811f7d26dfcb93d481f6c9da09a5",
    "coco_repope_random.json": "f464fcaf60b24ce2f280cf33f122e000dbdd35c8e88f77c4141c9c2cba864611",
}
#: `repope.data` keywords: the published RePOPE labels, or the original POPE labels of the same commit
PUBLISHED = {"repope": "coco_repope_{split}.json", "pope": "coco_pope_{split}.json"}
SPLITS = ("adversarial", "popular", "random")
_FILE = re.compile(r"^(?P<prefix>.*_)(?P<kind>re)?pope_(?P<split>[^.]+)\.json$")


@dataclass
class RepopeOptions(TaskOptions):
    data: str = opt("repope", "'repope' (the published corrected labels, downloaded once, pinned), 'pope' (the original "
                              "labels of the same commit), or POPE-format label files / a folder of them")
    images: str | None = opt(None, "folder with the COCO val2014 images")
    prompt_suffix: str = opt("", "text appended to each question (RePOPE asks the bare question; \\n for a newline)")
    questions: str | None = opt(None, "scoring only: the merged questions file the answers' question_ids refer to (LLaVA's "
                                      "llava_pope_test.jsonl: question_id, image, text, category); each question is found "
                                      "among the labelled ones by split, image and question")


def label_files(data: str) -> list[Path]:
    if data in PUBLISHED:
        if data == "repope":  # the original files too, beside them: they tell which questions RePOPE removed
            for s in SPLITS:
                published(PUBLISHED["pope"].format(split=s))
        return [published(PUBLISHED[data].format(split=s)) for s in SPLITS]
    paths: list[Path] = []
    for part in data.split(","):
        p = Path(part)
        if p.is_dir():
            found = sorted(p.glob("*_repope_*.json")) or sorted(p.glob("*_pope_*.json"))
            if not found:
                raise TaskError(f"{p}: no *_repope_<split>.json or *_pope_<split>.json label files in this folder")
            paths.extend(found)
        elif not p.is_file():
            raise TaskError(f"{p}: RePOPE label file not found (repope.data takes 'repope', 'pope', files or a folder)")
        else:
            paths.append(p)
    return paths


def published(name: str) -> Path:
    return pinned_file(URL.format(name=name), SHA256[name], f"repope/{COMMIT[:7]}/{name}", "repope.data")


def original_of(path: Path) -> Path | None:
    """The POPE file a RePOPE file relabels: `X_repope_S.json` → `X_pope_S.json` beside it."""
    found = _FILE.match(path.name)
    if not found or not found.group("kind"):
        return None
    sibling = path.with_name(f"{found.group('prefix')}pope_{found.group('split')}.json")
    return sibling if sibling.is_file() else None


def load_samples(options: RepopeOptions) -> list[Sample]:
    if options.questions:
        raise TaskError("repope.questions maps saved answers to the questions (mmhallu score repope); a run asks the "
                        "labelled questions themselves, leave it out")
    samples, _ = load_with_removed(options)
    return samples


def load_with_removed(options: RepopeOptions) -> tuple[list[Sample], dict[str, dict[str, tuple[str, str]]]]:
    """The samples, and per split the questions RePOPE removed, id → (image, question) (when the original POPE file
    is known)."""
    suffix = options.prompt_suffix.replace("\\n", "\n")
    samples: list[Sample] = []
    removed: dict[str, dict[str, tuple[str, str]]] = {}
    seen: dict[str, Path] = {}
    for path in label_files(options.data):
        part = load_question_file(path, options.images, suffix)
        split = split_from_filename(path)
        if split in seen:
            raise TaskError(f"{path}: split {split!r} already loaded from {seen[split]}; score them separately")
        seen[split] = path
        original = original_of(path)
        if original is not None:
            kept = {str(s.metadata["question_id"]) for s in part}
            removed[split] = {str(row.get("question_id")): (str(row.get("image")), str(row.get("text")))
                              for _, row in iter_jsonl(original) if str(row.get("question_id")) not in kept}
        samples.extend(part)
    return samples, removed
