"""AMBER's data folder (annotations.json, query/query_all.json, relation.json, safe_words.txt, metrics.txt): a local
copy of the repository's `data/` folder or the published files, downloaded once at a pinned commit."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mmhallu_eval import pinned_file, Sample, TaskError, TaskOptions, opt, read_json, read_text, resolve_image

COMMIT = "534babf6bbfcce2e735c26289dedfb21cef3c939"
URL = f"https://raw.githubusercontent.com/junyangwang0410/AMBER/{COMMIT}/data/{{name}}"
SHA256 = {
    "annotations.json": "db22a436c4836fbb295e60b4e80d519573077579fb7032f01b193c1bd022b797",
    "relation.json": "c4c1491e9bbc3209abc1888c12a1bf8413bdbab8a0d8be04b990a2e7680cf23e",
    "metrics.txt": "2fbe2ee584d10e7ce0a568a4902d3d2296727d45f761bf091dd35c4e4b5bc6ac",
    "safe_words.txt": "f92cf1123f4578a2630832fac3e6ac4de36212ea55859d3bed4fd233723f4043",
    "query/query_all.json": "127680ae61f7d4a92d2f7f07a8deaec07f0689b194d2c7c0f41ead7bd2c5bcf5",
}
#: annotation type → the section of the official printout it counts in
SECTION = {
    "generative": "generative",
    "discriminative-hallucination": "existence",
    "discriminative-attribute-state": "state",
    "discriminative-attribute-number": "number",
    "discriminative-attribute-action": "action",
    "discriminative-relation": "relation",
    "relation": "relation",
}
#: the official `--evaluation_type` flags → the sections they evaluate
EVALUATION_TYPES = {
    "a": ("generative", "existence", "state", "number", "action", "relation"),
    "g": ("generative",),
    "d": ("existence", "state", "number", "action", "relation"),
    "de": ("existence",),
    "da": ("state", "number", "action"),
    "dr": ("relation",),
}
#: the official metrics.txt: every `*_num` counter starts at 0.001, every `*_score` at 0
INITIAL_NUM = 0.001


@dataclass
class AmberOptions(TaskOptions):
    data: str = opt("github", "AMBER's data folder (annotations.json, query/, relation.json, safe_words.txt, metrics.txt), "
                              "or 'github': the published files at a pinned commit, downloaded once")
    images: str | None = opt(None, "folder with AMBER_1.jpg … AMBER_1004.jpg")
    spacy_model: str = opt("en_core_web_lg", "spaCy pipeline for the synonym check: an installed package name or a saved pipeline's folder")
    similarity: float = opt(0.8, "a noun counts as an object word when spaCy's similarity is above this (the script's --similarity_score)")
    evaluation_type: str = opt("a", "a all, g generative, d discriminative, de/da/dr existence/attribute/relation (the script's flag)")
    prompt_suffix: str = opt("", "text appended to each query (AMBER asks the query as it is; \\n for a newline)")

    def __post_init__(self) -> None:
        if self.evaluation_type not in EVALUATION_TYPES:
            raise TaskError(f"amber.evaluation_type {self.evaluation_type!r}: choose one of {', '.join(EVALUATION_TYPES)}")
        if not 0 <= self.similarity <= 1:
            raise TaskError(f"amber.similarity {self.similarity}: a cosine similarity threshold between 0 and 1")


@dataclass(frozen=True)
class AmberData:
    annotations: list[dict[str, Any]]
    queries: list[dict[str, Any]]
    association: dict[str, list[str]]
    safe_words: list[str]
    #: the object vocabulary: relation.json's keys and values
    vocabulary: frozenset[str]


def data_file(data: str, name: str) -> Path:
    if data == "github":
        return pinned_file(URL.format(name=name), SHA256[name], f"amber/{COMMIT[:7]}/{name}", "amber.data",
                           "the folder of AMBER's data files")
    path = Path(data) / name
    if not path.is_file():
        raise TaskError(f"{path}: not found; amber.data is AMBER's data/ folder (github.com/junyangwang0410/AMBER) or 'github'")
    return path


@lru_cache(maxsize=4)
def load_data(data: str) -> AmberData:
    annotations = read_json(data_file(data, "annotations.json"))
    queries = read_json(data_file(data, "query/query_all.json"))
    association = read_json(data_file(data, "relation.json"))
    check_counters(data_file(data, "metrics.txt"))
    safe_file = data_file(data, "safe_words.txt")
    safe_words = read_text(safe_file).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if safe_words and safe_words[-1] == "":  # a final newline ends the last line, it adds no word
        safe_words.pop()
    for name, value, kind in (("annotations.json", annotations, list), ("query/query_all.json", queries, list), ("relation.json", association, dict)):
        if not isinstance(value, kind):
            raise TaskError(f"{data_file(data, name)}: expected a JSON {kind.__name__}, got {type(value).__name__}")
    for i, row in enumerate(annotations):
        if not isinstance(row, dict) or row.get("id") != i + 1 or not isinstance(row.get("type"), str) or row["type"] not in SECTION:
            raise TaskError(f"{data_file(data, 'annotations.json')}: entry {i} must have id {i + 1} and an AMBER type, got {str(row)[:120]}")
        if not _truth_fits(row):
            raise TaskError(f"{data_file(data, 'annotations.json')}: entry {i} (id {i + 1}) needs "
                            + ("\"truth\" and \"hallu\" as lists of object words" if row["type"] == "generative" else "\"truth\" as text (yes or no)")
                            + f", got {str(row)[:120]}")
    for i, q in enumerate(queries):
        if not isinstance(q, dict) or not isinstance(q.get("query"), str) or not isinstance(q.get("image"), str):
            raise TaskError(f"{data_file(data, 'query/query_all.json')}: entry {i} needs \"id\", \"image\" and \"query\" (text), got {str(q)[:120]}")
    for word, related in association.items():
        if not isinstance(related, list) or not all(isinstance(w, str) for w in related):
            raise TaskError(f"{data_file(data, 'relation.json')}: {word!r} needs a list of object words (text), got {str(related)[:120]}")
    vocabulary = frozenset(list(association) + [w for words in association.values() for w in words])
    return AmberData(annotations, queries, association, safe_words, vocabulary)


def _truth_fits(row: dict) -> bool:
    """What the scorer reads of an annotation: object word lists for a description, a yes/no answer otherwise."""
    if row["type"] == "generative":
        return all(isinstance(row.get(k), list) and all(isinstance(w, str) for w in row[k]) for k in ("truth", "hallu"))
    return isinstance(row.get("truth"), str)


def check_counters(path: Path) -> None:
    """The scorer starts its counters as the published metrics.txt does; a different file is refused, not ignored."""
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.strip().split("=")
        if len(parts) != 2:
            continue
        name, value = parts[0].strip(), parts[1].strip()
        expected = INITIAL_NUM if name.endswith("_num") else 0
        try:
            ok = float(value) == expected
        except ValueError:
            ok = False
        if not ok:
            raise TaskError(f"{path}:{lineno}: {name}={value} differs from the published counters (*_num=0.001, *_score=0)")


def load_samples(options: AmberOptions) -> list[Sample]:
    amber = load_data(options.data)
    sections = set(EVALUATION_TYPES[options.evaluation_type])
    suffix = options.prompt_suffix.replace("\\n", "\n")
    samples = []
    for q in amber.queries:
        qid = q.get("id") if isinstance(q, dict) else None
        if not isinstance(qid, int) or not 1 <= qid <= len(amber.annotations):
            raise TaskError(f"{data_file(options.data, 'query/query_all.json')}: query {str(q)[:120]} has no id in annotations.json")
        truth = amber.annotations[qid - 1]
        section = SECTION[truth["type"]]
        if section not in sections:
            continue
        generative = section == "generative"
        samples.append(Sample(
            id=str(qid), prompt=str(q["query"]) + suffix, images=[resolve_image(str(q["image"]), options.images)],
            target=None if generative else str(truth["truth"]), group=section,
            metadata={"amber_id": qid, "type": truth["type"], "image": q["image"], "question": q["query"],
                      **({"truth": truth["truth"], "hallu": truth["hallu"]} if generative else {})},
        ))
    return samples
