"""MMHal-Bench (Sun et al., 2023): 96 open questions over 8 types, answers rated 0–6 by an LLM judge with the
official GPT-4 prompt; rating < 3 counts as a hallucination."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmhallu_eval import (
    AnswerMatch, Capabilities, GenerationConfig, JudgeOptions, Measure, Metric, Parser, Sample, TaskError, TaskSpec, atomic_write_json, count, create_judge, judge_cache,
    load_hf_dataset, opt, ratio, read_json, require_fields, task,
)

from .oracle import NAME as ORACLE, SceneGraphOracle

TEMPLATE = Path(__file__).with_name("judge_template.txt").read_text(encoding="utf-8")
PROMPT_VERSION = "mmhal-eval_gpt4-v1"
QUESTION_TYPES = ("attribute", "adversarial", "comparison", "counting", "relation", "environment", "holistic", "other")
FIELDS = ("question_type", "question_topic", "image_id", "image_src", "image_content", "question", "gt_answer")


def judge_prompt(item: dict[str, Any], answer: str) -> str:
    """The official template filled as eval_gpt4.py fills it."""
    return TEMPLATE.format(", ".join(item["image_content"]), item["question"], item["gt_answer"], answer)


def mmhal_official(reply: str) -> int | None:
    """eval_gpt4.py: s ∈ 0..6 is found when 'rating: s' occurs in the lower-cased reply; exactly one → s.
    None means zero or several were found; the official script then scores 0 (see `rating`)."""
    low = reply.lower()
    found = [s for s in range(7) if f"rating: {s}" in low]
    return found[0] if len(found) == 1 else None


def _image_for(item: dict[str, Any], folder: str | None, where: str) -> Any:
    if folder is None:
        raise TaskError(f"{where}: images are not embedded; pass --task-arg mmhal.images=DIR")
    base = Path(folder)
    candidates = [base / item["image_id"], *(base / f"{item['image_id']}{ext}" for ext in (".jpg", ".png", ".jpeg"))]
    src = str(item.get("image_src") or "")
    if src and "://" not in src and not Path(src).is_absolute():
        candidates.append(base / src)
    if src:
        candidates.append(base / Path(src).name)
    for c in candidates:
        if c.is_file():
            return str(c)
    return str(candidates[-1])  # recorded as missing_image by the runner


def _check_item(item: Any, where: str) -> None:
    """A template item has every field, texts where texts belong and a list of texts as image_content."""
    if not isinstance(item, dict):
        raise TaskError(f"{where}: not an object of the MMHal-Bench template")
    require_fields(item, FIELDS, where, text=("question", "gt_answer", "question_type"))
    if not isinstance(item["image_content"], list) or not all(isinstance(c, str) for c in item["image_content"]):
        raise TaskError(f"{where}: image_content must be a list of texts")
    if not isinstance(item["image_id"], (str, int)) or not isinstance(item.get("image_src") or "", str):
        raise TaskError(f"{where}: image_id and image_src must be text")


def _sample(i: int, item: dict[str, Any], image: Any, items: int) -> Sample:
    """Item `i` of `items` (saved judge replies are one per item, in item order)."""
    return Sample(
        id=str(i), prompt=item["question"], images=[image], target=item["gt_answer"], group=item["question_type"],
        metadata={k: item.get(k) for k in FIELDS} | {"index": i, "items": items},
    )


@dataclass
class MmhalOptions(JudgeOptions):
    data: str = opt("hf:Shengcao1006/MMHal-Bench", "response_template.json (96 items) or hf:NAME")
    images: str | None = opt(None, "folder with the images, named by image_id or by the basename of image_src")
    judge_backend: str = opt("openai", "openai (any OpenAI-compatible server), a backend name (transformers) for a local judge model, or "
                             f"{ORACLE}: rule-based ratings against complete scene graphs (synthetic data such as the shapes world only)")
    judge_scene_graph: str | None = opt(None, f"scene-graph JSON (or COCO instances) for the {ORACLE} judge")
    judge_synonyms: str | None = opt(None, f"CHAIR-style synonyms file (one class per line, name first) for the {ORACLE} judge")
    judge_replies: str | None = opt(None, "saved judge replies (JSON list in item order) to score without calling a judge")


def load_samples(options: MmhalOptions) -> list[Sample]:
    data = options.data
    if data.startswith("hf:"):
        ds = load_hf_dataset(data[3:], split="test", option="mmhal.data")
        return [
            _sample(i, dict(row), row["image"] if row.get("image") is not None and not isinstance(row["image"], str) else _image_for(dict(row), options.images, f"{data}[{i}]"),
                    len(ds))
            for i, row in enumerate(ds)
        ]
    items = read_json(data)
    if not isinstance(items, list):
        raise TaskError(f"{data}: expected the MMHal-Bench template (a JSON list of 96 items)")
    samples = []
    for i, item in enumerate(items):
        missing = [f for f in FIELDS if f not in item]
        if missing:
            raise TaskError(f"{data}: item {i}: missing field(s) {', '.join(missing)}")
        _check_item(item, f"{data}: item {i}")
        samples.append(_sample(i, item, _image_for(item, options.images, f"{data}: item {i}"), len(items)))
    return samples


def _judge_replies(path: str, items: int) -> list[str]:
    """Saved judge replies: the official evaluation file (a list of OpenAI responses), strings, or {content}; one per
    item of the answers file, in item order (an item that is not scored keeps its reply's place)."""
    data = read_json(path)
    if not isinstance(data, list) or len(data) != items:
        found = f"{len(data)} replies" if isinstance(data, list) else "not a list"
        raise TaskError(f"{path}: expected a JSON list of {items} judge replies, one per item of the answers file in item order ({found})")
    out = []
    for i, r in enumerate(data):
        text: object = None
        if isinstance(r, str):
            text = r
        elif isinstance(r, dict) and "choices" in r:
            choices = r["choices"]
            first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
            text = first.get("message", {}).get("content") if isinstance(first.get("message"), dict) else None
        elif isinstance(r, dict):
            text = r.get("content", r.get("reply"))
        if not isinstance(text, str):
            raise TaskError(f"{path}: reply {i} has no text (expected a string, {{content}} or an OpenAI response)")
        out.append(text)
    return out


def score_batch(samples: list[Sample], texts: list[str], parser: Parser, options: MmhalOptions) -> list[dict[str, Any]]:
    prompts = [judge_prompt(s.metadata, t) for s, t in zip(samples, texts)]
    if options.judge_backend == ORACLE:
        if not options.judge_scene_graph:
            raise TaskError(f"the {ORACLE} judge needs the scene graphs: --judge-scene-graph FILE (mmhallu score) or "
                            "--task-arg mmhal.judge_scene_graph=FILE (mmhallu run); synthetic data only")
        oracle = SceneGraphOracle(options.judge_scene_graph, options.judge_synonyms)
        verdicts = [(oracle.rate(s.metadata, t), None) for s, t in zip(samples, texts)]
        judge_info = oracle.describe()
    elif options.judge_replies:
        replies = _judge_replies(options.judge_replies, int(samples[0].metadata["items"]) if samples else 0)
        replies = [replies[int(s.metadata["index"])] for s in samples]
        verdicts = [(r, None) for r in replies]
        judge_info = {"kind": "saved-replies", "file": options.judge_replies}
    else:
        judge = create_judge(options)
        cache = judge_cache(options.judge_cache)
        try:
            verdicts = [(v.reply, v.error) for v in judge.judge(prompts, cache)]
        finally:
            if cache is not None:
                cache.close()
        judge_info = judge.describe()
    out = []
    for reply, error in verdicts:
        if error is not None:
            out.append({"error": f"judge_error: {error}", "judge": judge_info})
            continue
        found = parser(reply)
        rating = 0 if found is None else found
        out.append({"parsed": rating, "correct": rating >= 3, "judge_reply": reply, "rating_found": found is not None, "judge": judge_info})
    return out


def score_sample(sample: Sample, text: str, parser: Parser) -> dict[str, Any]:
    raise TaskError("MMHal needs its judge: scoring goes through score_batch")


def unit_stats(records: list[dict[str, Any]]) -> tuple[float, ...]:
    """One answer: its rating, whether it is a hallucination (rating < 3), 1 answer, whether no rating was found."""
    r = records[0]
    return (r["parsed"], r["parsed"] < 3, 1, not r.get("rating_found", True))


MEASURE = Measure(
    stats=("rating", "hallucination", "n", "unparsed"),
    unit_stats=unit_stats,
    group_order=QUESTION_TYPES,
    metrics=(
        Metric("average_score", ratio("rating", "n"), True, ci=True),
        Metric("hallucination_rate", ratio("hallucination", "n"), False, ci=True),
        Metric("n", count("n")),
        Metric("unparsed_ratings", count("unparsed")),
    ),
    extra=lambda groups, head: {"judge": next((r.get("judge") for r in head if r.get("judge")), None), "prompt_version": PROMPT_VERSION},
)


def export(records: list[dict[str, Any]], task_dir: Path) -> None:
    """`<run>/mmhal/response.json`: the template with model_answer filled in, the file eval_gpt4.py reads."""
    filled = []
    for r in sorted(records, key=lambda r: int(r["metadata"]["index"])):
        item = {k: r["metadata"].get(k) for k in FIELDS}
        item["model_answer"] = "" if r.get("error") and r["error"].startswith(("missing_image", "generation_error")) else r["response"]
        filled.append(item)
    atomic_write_json(Path(task_dir) / "response.json", filled)


def read_answers(path: Any, options: MmhalOptions) -> tuple[list[Sample], AnswerMatch]:
    """The filled template (response.json). The same question on the same image twice is a duplicate answer."""
    items = read_json(path)
    if not isinstance(items, list):
        raise TaskError(f"{path}: expected the filled MMHal-Bench template (a JSON list)")
    samples, match, seen = [], AnswerMatch(), {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TaskError(f"{path}: item {i} is not an object of the template")
        missing = [f for f in (*FIELDS, "model_answer") if f not in item]
        if missing:
            raise TaskError(f"{path}: item {i}: missing field(s) {', '.join(missing)}")
        key = (str(item["image_id"]), str(item["question"]))
        if key in seen:
            match.duplicates.append(f"item {i} (= item {seen[key]})")
            continue
        seen[key] = i
        _check_item(item, f"{path}: item {i}")
        s = _sample(i, item, item.get("image_src") or str(item["image_id"]), len(items))
        if match.offer(s.id, item["model_answer"], f"item {i}"):
            samples.append(s)
    return samples, match


@task("mmhal")
def mmhal() -> TaskSpec:
    return TaskSpec(
        name="mmhal",
        version="1",
        description="MMHal-Bench: open questions rated 0-6 by an LLM judge (official GPT-4 prompt); rating < 3 = hallucination",
        data_source="hf:Shengcao1006/MMHal-Bench or the response_template.json + images folder",
        loader=load_samples,
        score_sample=score_sample,
        score_batch=score_batch,
        measure=MEASURE,
        parsers={"mmhal-official": Parser("mmhal-official", "1", mmhal_official, "exactly one 'rating: s' (s=0..6) in the lower-cased reply, else 0")},
        default_parser="mmhal-official",
        generation=GenerationConfig(max_new_tokens=1024),
        headline=("average_score", "hallucination_rate"),
        options=MmhalOptions,
        capabilities=Capabilities(judged=True),
        read_answers=read_answers,
        export=export,
    )
