"""mmhallu-eval: hallucination benchmarks for multimodal LLMs.

The public API for task plugins lives here; it imports no torch, so scoring saved answers stays light.
"""
from .annotations import SIZE_ORDER, check_coco_captions, check_coco_instances, load_graphs
from .backends.judge import Judge, JudgeOptions, create_judge, judge_cache
from .data import cache_root, image_digest, load_hf_dataset, open_image, pinned_file, resolve_image
from .files import atomic_write_json, atomic_write_jsonl, iter_jsonl, read_json, read_text, require_fields
from .errors import TaskError, UserError
from .measure import Measure, Metric, PooledMetric, Sums, add_sums, count, f1_of, pooled_totals, quotient, ratio
from .nltk_resources import download_nltk_resources, missing_nltk_resources, use_bundled_nltk_data
from .paired import group_units, keep_whole_units
from .scoring import AnswerMatch, iter_answer_rows, match_answers
from .registry import TaskAlias, get_task, include_path, task, task_alias, task_names
from .options import TaskOptions, opt
from .prompts import DESCRIBE, SHORT_ANSWER, YES_NO
from .interop.vlmevalkit import file_key, first_column, image_number, question_key
from .task import Capabilities, LmmsEvalTask, MixProbe, Parser, PeerMetric, TaskSpec, VlmevalkitDataset, single_image_request
from .types import GenerationConfig, ImageLike, Request, Response, Sample, user_message

__version__ = "0.1.0"

__all__ = [
    "AnswerMatch",
    "DESCRIBE",
    "SHORT_ANSWER",
    "YES_NO",
    "Capabilities",
    "JudgeOptions",
    "MixProbe",
    "LmmsEvalTask",
    "PeerMetric",
    "VlmevalkitDataset",
    "TaskAlias",
    "TaskOptions",
    "task_alias",
    "opt",
    "SIZE_ORDER",
    "check_coco_captions",
    "check_coco_instances",
    "GenerationConfig",
    "Judge",
    "Measure",
    "Metric",
    "PooledMetric",
    "Sums",
    "UserError",
    "ImageLike",
    "Parser",
    "Request",
    "Response",
    "Sample",
    "TaskError",
    "TaskSpec",
    "atomic_write_json",
    "atomic_write_jsonl",
    "count",
    "pooled_totals",
    "add_sums",
    "file_key",
    "first_column",
    "image_number",
    "question_key",
    "f1_of",
    "quotient",
    "ratio",
    "create_judge",
    "get_task",
    "group_units",
    "keep_whole_units",
    "image_digest",
    "include_path",
    "iter_jsonl",
    "judge_cache",
    "load_graphs",
    "load_hf_dataset",
    "missing_nltk_resources",
    "use_bundled_nltk_data",
    "download_nltk_resources",
    "open_image",
    "pinned_file",
    "cache_root",
    "iter_answer_rows",
    "match_answers",
    "read_json",
    "read_text",
    "require_fields",
    "resolve_image",
    "single_image_request",
    "task",
    "task_names",
    "user_message",
]
