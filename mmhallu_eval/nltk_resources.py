"""The NLTK data CHAIR's normalisation needs, and where it is missing (offline machines, fresh installs)."""
from __future__ import annotations

NLTK_RESOURCES = {
    "punkt_tab": "tokenizers/punkt_tab/english/",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng/",
    "wordnet": "corpora/wordnet",
}


def missing_nltk_resources() -> list[str]:
    import nltk

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
