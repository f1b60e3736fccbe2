"""The NLTK data CHAIR's normalisation (and AMBER's noun extraction) needs. The package ships the parts those read —
Punkt's English tables, the English averaged-perceptron tagger, and WordNet's index and exception files (the
lemmatiser reads nothing else) — under `mmhallu_eval/nltk_data`, searched after the user's own NLTK data, so a fresh
install scores CHAIR offline; `mmhallu setup nltk` still downloads the full resources."""
from __future__ import annotations

from pathlib import Path

NLTK_RESOURCES = {
    "punkt_tab": "tokenizers/punkt_tab/english/",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng/",
    "wordnet": "corpora/wordnet",
}
BUNDLED = Path(__file__).with_name("nltk_data")


def use_bundled_nltk_data() -> None:
    """Put the shipped resources at the end of NLTK's search path (once)."""
    import nltk

    if BUNDLED.is_dir() and str(BUNDLED) not in nltk.data.path:
        nltk.data.path.append(str(BUNDLED))


def missing_nltk_resources() -> list[str]:
    import nltk

    use_bundled_nltk_data()
    missing = []
    for name, path in NLTK_RESOURCES.items():
        try:
            nltk.data.find(path)
        except LookupError:
            try:
                nltk.data.find(path.rstrip("/") + ".zip")
            except LookupError:
                missing.append(name)
    return missing


def download_nltk_resources() -> bool:
    import nltk

    return all(nltk.download(name, quiet=True) for name in NLTK_RESOURCES)
