"""MME data sources: the official release folders, the flat `image \\t question \\t gt` lists, lmms-lab/MME."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmhallu_eval import Sample, TaskError, TaskOptions, load_hf_dataset, opt, read_text

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SUBTASKS = PERCEPTION + COGNITION
DEFAULT_DATA = "hf:lmms-lab/MME"
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG")


def check_subtask(name: str, where: str) -> str:
    if name not in SUBTASKS:
        raise TaskError(f"{where}: unknown MME subtask {name!r}; expected one of {', '.join(SUBTASKS)}")
    return name


def check_gt(value: str, where: str) -> str:
    if value.strip().lower() not in ("yes", "no"):
        raise TaskError(f"{where}: ground truth must be Yes or No, got {value!r}")
    return value.strip()


def make_sample(subtask: str, image_name: str, image: object, question: str, gt: str, index: int, suffix: str) -> Sample:
    return Sample(
        id=f"{subtask}/{image_name}/{index}",
        prompt=question + suffix if suffix and not question.endswith(suffix) else question,
        images=[image],
        target=gt.lower(),
        group=subtask,
        metadata={"subtask": subtask, "image": image_name, "question": question, "gt": gt},
    )


def _find_image(images_root: Path | None, data_root: Path, subtask: str, name: str) -> str:
    roots = [r for r in (images_root, data_root) if r is not None]
    for root in roots:
        for candidate in (root / subtask / "images" / name, root / subtask / name, root / name):
            if candidate.is_file():
                return str(candidate)
    return str((roots[0] / subtask / name) if roots else name)


def read_flat_list(path: Path, columns: int) -> list[tuple[int, list[str]]]:
    """Tab-separated lines with exactly `columns` fields (the official result format has 4)."""
    rows = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != columns:
            raise TaskError(f"{path}:{lineno}: expected {columns} tab-separated fields, found {len(fields)}")
        rows.append((lineno, fields))
    return rows


def load_flat(folder: Path, images: Path | None, subtasks: tuple[str, ...], suffix: str) -> list[Sample]:
    samples: list[Sample] = []
    files = {p.stem: p for p in sorted(folder.glob("*.txt"))}
    for stem in files:
        check_subtask(stem, str(files[stem]))
    for subtask in subtasks:
        if subtask not in files:
            continue
        seen: dict[str, int] = {}
        for lineno, (name, question, gt) in read_flat_list(files[subtask], 3):
            idx = seen.get(name, 0)
            seen[name] = idx + 1
            image = _find_image(images, folder, subtask, name)
            samples.append(make_sample(subtask, name, image, question, check_gt(gt, f"{files[subtask]}:{lineno}"), idx, suffix))
    return samples


def load_release(root: Path, subtasks: tuple[str, ...], suffix: str) -> list[Sample]:
    """MME_Benchmark_release_version/<subtask>/ with images/ + questions_answers_YN/, or images and .txt side by side."""
    samples: list[Sample] = []
    for subtask in subtasks:
        folder = root / subtask
        if not folder.is_dir():
            continue
        qa_dir = folder / "questions_answers_YN"
        img_dir = folder / "images" if qa_dir.is_dir() else folder
        qa_files = sorted((qa_dir if qa_dir.is_dir() else folder).glob("*.txt"))
        for qa in qa_files:
            image = next((img_dir / (qa.stem + s) for s in IMAGE_SUFFIXES if (img_dir / (qa.stem + s)).is_file()), None)
            name = image.name if image else qa.stem + ".jpg"
            for idx, (lineno, fields) in enumerate(read_flat_list(qa, 2)):
                samples.append(
                    make_sample(subtask, name, str(image or img_dir / name), fields[0], check_gt(fields[1], f"{qa}:{lineno}"), idx, suffix)
                )
    return samples


def load_hf(name: str, subtasks: tuple[str, ...], suffix: str) -> list[Sample]:
    ds = load_hf_dataset(name, split="test", option="mme.data")
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(ds):
        subtask = check_subtask(str(row["category"]), f"{name}[{i}]")
        if subtask not in subtasks:
            continue
        image_name = str(row["question_id"]).split("/")[-1]
        key = f"{subtask}/{image_name}"
        idx = seen.get(key, 0)
        seen[key] = idx + 1
        samples.append(make_sample(subtask, image_name, row["image"], row["question"], check_gt(row["answer"], f"{name}[{i}]"), idx, suffix))
    return samples


@dataclass
class MmeOptions(TaskOptions):
    data: str = opt(DEFAULT_DATA, "MME release folder, folder of <subtask>.txt lists (image\\tquestion\\tgt), or hf:NAME")
    images: str | None = opt(None, "folder with <subtask>/images/<image> (or <subtask>/<image>) for the flat lists")
    subtasks: str | None = opt(None, "comma-separated subset of: " + ", ".join(SUBTASKS))
    prompt_suffix: str = opt("", "text appended to each question (none: the questions end with 'Please answer yes or no.')")


def load_samples(options: MmeOptions) -> list[Sample]:
    data = options.data
    subtasks = tuple(s.strip() for s in options.subtasks.split(",")) if options.subtasks else SUBTASKS
    for s in subtasks:
        check_subtask(s, "--task-arg mme.subtasks")
    suffix = options.prompt_suffix.replace("\\n", "\n")
    if data.startswith("hf:"):
        samples = load_hf(data[3:], subtasks, suffix)
    else:
        root = Path(data)
        if not root.is_dir():
            raise TaskError(f"{root}: MME data folder not found")
        images = Path(options.images) if options.images else None
        if any(root.glob("*.txt")):
            samples = load_flat(root, images, subtasks, suffix)
        else:
            samples = load_release(root, subtasks, suffix)
    if not samples:
        raise TaskError(f"{data}: no MME questions found for subtasks {', '.join(subtasks)}")
    return samples
