"""CHAIR (Rohrbach et al., 2018) as OPERA evaluates it: detailed captions of COCO val2014 images, object
mentions checked against the image's ground-truth objects."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmhallu_eval import DESCRIBE, AnswerMatch, Capabilities, GenerationConfig, LmmsEvalTask, Measure, Metric, Parser, PeerMetric, Sample, TaskError, TaskSpec, atomic_write_json, atomic_write_jsonl, count, iter_jsonl, ratio, read_json, read_text, resolve_image, task, TaskOptions, opt

from .groundtruth import build_ground_truth, images_with_instances, load_gt_json
from .normalize import DEFAULT_SYNONYMS, CaptionWords, normalizer_for
from .scorer import caption_words_many, score_caption_words

COCO_NAME = "COCO_val2014_{:012d}.jpg"


@dataclass
class ChairOptions(TaskOptions):
    coco_annotations: str | None = opt(None, "folder with instances_*.json and captions_*.json (COCO 2014); picks images and ground truth")
    images: str | None = opt(None, "folder with the images (e.g. COCO val2014)")
    gt: str | None = opt(None, "JSON image_id → object names, instead of building ground truth from COCO files")
    image_ids: str | None = opt(None, "file with the image ids to caption (JSON list or one per line), e.g. a previous run's chair/image_ids.json")
    n_images: int = opt(500, "how many images to sample")
    seed: int = opt(0, "sampling seed")
    prompt: str = opt(DESCRIBE, "captioning prompt")
    synonyms: str | None = opt(None, "CHAIR synonyms file (default: the original 80-category list)")
    image_id_key: str = opt("image_id", "image id field of a captions file for `mmhallu score chair`")
    caption_key: str = opt("caption", "caption field of a captions file for `mmhallu score chair`")


def _read_ids(path: str) -> list[int]:
    p = Path(path)
    text = read_text(p) if p.is_file() else ""
    if not text:
        raise TaskError(f"{path}: image id list not found or empty")
    try:
        data = json.loads(text)
        ids = data if isinstance(data, list) else data.get("image_ids", [])
    except json.JSONDecodeError:
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        return [int(i) for i in ids]
    except ValueError:
        raise TaskError(f"{path}: image ids must be integers") from None


def _ground_truth(options: ChairOptions, ids: list[int], allow_unknown: bool = False) -> dict[int, list[str]]:
    normalizer = normalizer_for(options.synonyms)
    if options.gt:
        gt = load_gt_json(Path(options.gt), normalizer)
    elif options.coco_annotations:
        gt = build_ground_truth(Path(options.coco_annotations), ids, normalizer, options.synonyms or str(DEFAULT_SYNONYMS))
    else:
        raise TaskError("CHAIR needs ground truth: --task-arg chair.coco_annotations=DIR (COCO instances/captions JSON) or chair.gt=GT.json")
    missing = [i for i in ids if i not in gt]
    if missing and not allow_unknown:
        raise TaskError(
            f"{len(missing)} image id(s) have no ground truth (first: {', '.join(map(str, missing[:10]))}); "
            "the OPERA script would count all their objects as hallucinated"
        )
    return gt


def load_samples(options: ChairOptions) -> list[Sample]:
    coco = Path(options.coco_annotations) if options.coco_annotations else None
    file_names: dict[int, str] = images_with_instances(coco) if coco else {}
    if options.image_ids:
        ids = _read_ids(options.image_ids)
    else:
        pool = sorted(file_names) if file_names else sorted(int(k) for k in (read_json(options.gt) if options.gt else {}))
        if not pool:
            raise TaskError("CHAIR needs chair.coco_annotations=DIR (or chair.gt=GT.json / chair.image_ids=FILE) to choose images")
        ids = sorted(random.Random(options.seed).sample(pool, min(options.n_images, len(pool))))
    gt = _ground_truth(options, ids)
    prompt = options.prompt
    samples = []
    for image_id in ids:
        name = file_names.get(image_id, COCO_NAME.format(image_id))
        samples.append(
            Sample(
                id=str(image_id),
                prompt=prompt,
                images=[resolve_image(name, options.images)],
                target=gt[image_id],
                metadata={"image_id": image_id, "file_name": name, "synonyms": options.synonyms},
            )
        )
    return samples


def _score(sample: Sample, words: CaptionWords) -> dict[str, Any]:
    result = score_caption_words(words, sample.target)
    return {"parsed": result, "correct": not result["hallucinated"]}


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    return _score(sample, normalizer_for(sample.metadata.get("synonyms")).caption_words(text))


def score_batch(samples: list[Sample], texts: list[str], parser: Parser, options: ChairOptions) -> list[dict[str, Any]]:
    """The same as score_sample per caption; the NLP work is spread over processes for large files."""
    synonyms = {s.metadata.get("synonyms") for s in samples}
    if len(synonyms) > 1:
        return [score_sample(s, t, parser) for s, t in zip(samples, texts)]
    words = caption_words_many(synonyms.pop() if synonyms else None, texts)
    return [_score(s, w) for s, w in zip(samples, words)]


def unit_stats(records: list[dict[str, Any]]) -> tuple[int, ...]:
    """One caption: hallucinates at all, hallucinated mentions, mentions, covered truth objects, truth objects,
    tokens, 1 caption."""
    p = records[0]["parsed"]
    return (bool(p["hallucinated"]), len(p["hallucinated"]), len(p["mentions"]), len(p["covered"]), p["n_gt"], p["n_tokens"], 1)


#: OPERA's chair.py: CHAIR_s over captions, CHAIR_i over mentions (ratios of sums), recall over truth objects
MEASURE = Measure(
    stats=("hallucinating", "hallucinated", "mentions", "covered", "truth", "tokens", "captions"),
    unit_stats=unit_stats,
    metrics=(
        Metric("chair_s", ratio("hallucinating", "captions"), False, ci=True),
        Metric("chair_i", ratio("hallucinated", "mentions"), False, ci=True),
        Metric("recall", ratio("covered", "truth"), True, ci=True),
        Metric("avg_len", ratio("tokens", "captions"), None, ci=True),
        Metric("n", count("captions")),
        Metric("mentions", count("mentions")),
        Metric("hallucinated_mentions", count("hallucinated")),
    ),
)


def export(records: list[dict[str, Any]], task_dir: Path) -> None:
    """The chosen image ids (reusable with chair.image_ids=) and the captions in OPERA's input format."""
    ids = [r["metadata"]["image_id"] for r in records]
    atomic_write_json(Path(task_dir) / "image_ids.json", ids)
    atomic_write_jsonl(
        Path(task_dir) / "captions.jsonl",
        [{"image_id": r["metadata"]["image_id"], "caption": r["response"]} for r in records if not r.get("error")],
    )


def read_answers(path: Any, options: ChairOptions) -> tuple[list[Sample], AnswerMatch]:
    """OPERA-style caption files: JSONL (or a JSON list) of {image_id, caption}."""
    path = Path(path)
    id_key, cap_key = options.image_id_key, options.caption_key
    data = read_json(path) if path.suffix == ".json" else None
    if data is not None and not isinstance(data, list):
        raise TaskError(f"{path}: expected a JSON list of {{{id_key}, {cap_key}}} rows")
    rows = list(enumerate(data, start=1)) if data is not None else list(iter_jsonl(path))
    captions = []
    for lineno, row in rows:
        if not isinstance(row, dict) or id_key not in row or cap_key not in row:
            raise TaskError(f"{path}:{lineno}: needs {id_key!r} and {cap_key!r}")
        captions.append((f"{path}:{lineno}", f"line {lineno}", row[id_key], row[cap_key]))
    return captioned_samples(captions, options, id_key)


def captioned_samples(captions: list[tuple[str, str, Any, Any]], options: ChairOptions, id_key: str = "image_id") -> tuple[list[Sample], AnswerMatch]:
    """Samples for the images of (where, how the file names the row, image id, caption) rows, ground truth from the
    options. An image captioned twice is a duplicate and an image without ground truth an unknown id, reported (and
    left out) as for POPE."""
    ids: list[int] = []
    for where, _, image_id, _ in captions:
        try:
            ids.append(int(image_id))
        except (TypeError, ValueError):
            raise TaskError(f"{where}: {id_key} {image_id!r} is not an image id (a whole number)") from None
    gt = _ground_truth(options, sorted(set(ids)), allow_unknown=True)
    samples, match = [], AnswerMatch()
    for (_, name, _, caption), image_id in zip(captions, ids):
        if image_id not in gt:
            match.unknown.append(f"{image_id} ({name})")
            continue
        if match.offer(str(image_id), caption, f"{image_id} ({name})"):
            samples.append(Sample(id=str(image_id), prompt="", target=gt[image_id], metadata={"image_id": image_id, "source": name, "synonyms": options.synonyms}))
    return samples, match


def lmms_eval_captions(lines: list[tuple[str, dict[str, Any]]], options: ChairOptions) -> tuple[list[Sample], AnswerMatch]:
    """lmms-eval's coco_cap_chair log: each line's metric objects name the image (`image_id`); its answer is the caption."""
    captions = []
    for where, row in lines:
        logged = next((row[k] for k in LMMS_EVAL_METRICS if isinstance(row.get(k), dict)), None)
        if logged is None or "image_id" not in logged:
            raise TaskError(f"{where}: no {' / '.join(LMMS_EVAL_METRICS)} object with the image_id; not a coco_cap_chair log line")
        captions.append((where, f"doc_id {row['doc_id']}", logged["image_id"], row["filtered_resps"]))
    return captioned_samples(captions, options)


#: lmms-eval's coco_cap_chair metrics (percent) and the metrics here with the same meaning
LMMS_EVAL_METRICS = {"coco_cap_chair_i": PeerMetric(("metrics", "chair_i"), 100.0), "coco_cap_chair_s": PeerMetric(("metrics", "chair_s"), 100.0),
                     "coco_cap_recall": PeerMetric(("metrics", "recall"), 100.0)}


def mentions(text: str, metadata: dict[str, Any]) -> list[str]:
    """The COCO categories a text mentions, through the normaliser of the record's synonyms file."""
    return normalizer_for(metadata.get("synonyms")).caption_words(text).categories


def cleaned_caption(record: dict[str, Any], context: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """HA-DPO: a caption with hallucinated objects (rejected) against the same caption without the sentences that
    mention them, or a reference caption of the image when nothing remains (chosen)."""
    import nltk

    bad = {c for _, c in (record.get("parsed") or {}).get("hallucinated", [])}
    if not bad:
        return None
    kept = [s for s in nltk.sent_tokenize(record["response"]) if not set(mentions(s, record["metadata"])) & bad]
    chosen = " ".join(kept) or context.get("reference_captions", {}).get(int(record["metadata"]["image_id"]), "")
    if not chosen or chosen.strip() == record["response"].strip():
        return None
    return chosen, record["response"], {"pair_type": "caption", "image_id": record["metadata"]["image_id"], "hallucinated": sorted(bad)}


def display(parsed: Any) -> str:
    halluc = ", ".join(c for _, c in parsed.get("hallucinated", [])) or "none"
    return f"hallucinated: {halluc}; mentioned: {', '.join(c for _, c in parsed.get('mentions', [])) or 'none'}"


@task("chair")
def chair() -> TaskSpec:
    return TaskSpec(
        name="chair",
        version="1",
        description="CHAIR_s / CHAIR_i object hallucination in detailed captions of COCO val2014 (OPERA protocol)",
        data_source="COCO val2014 images + instances/captions annotations (chair.coco_annotations)",
        loader=load_samples,
        score_sample=score_sample,
        score_batch=score_batch,
        measure=MEASURE,
        parsers={
            "chair-opera": Parser(
                "chair-opera", "1", lambda text: normalizer_for(None).caption_words(text).categories,
                "OPERA chair.py: NLTK tokenize + POS-tagged WordNet lemmas, phrase merge, synonym map",
            )
        },
        default_parser="chair-opera",
        generation=GenerationConfig(max_new_tokens=512),
        headline=("chair_s", "chair_i"),
        options=ChairOptions,
        read_answers=read_answers,
        export=export,
        capabilities=Capabilities(mentions=mentions, failure_pair=cleaned_caption, display=display,
                                  lmms_eval=(LmmsEvalTask("coco_cap_chair", None, LMMS_EVAL_METRICS, from_lines=lmms_eval_captions),)),
    )
