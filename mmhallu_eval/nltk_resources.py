"""The NLTK data CHAIR's normalisation (and AMBER's noun extraction) needs. The package ships the parts those read —
Punkt's English tables, the English averaged-perceptron tagger, and WordNet's index and exception files (the
lemmatiser reads nothing else) — under `mmhallu_eval/nltk_data`, searched after the user's own NLTK data, so a fresh
install scores CHAIR offline; `mmhallu setup nltk` still downloads the full resources."""
from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

NLTK_RESOURCES = {
    "punkt_tab": "tokenizers/punkt_tab/english/",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng/",
    "wordnet": "corpora/wordnet",
}
BUNDLED = Path(__file__).with_name("nltk_data")


def import_nltk() -> ModuleType:
    """`import nltk` without SciPy's statistics. NLTK's package import loads scipy.stats (~0.6 s on a 2-core CPU)
    for one collocation measure, `fisher_exact`, that tokenising, tagging and lemmatising never use: the import is
    made with scipy.stats unavailable and the measure then imports it on first call, so NLTK behaves as before."""
    if "nltk" in sys.modules or "scipy.stats" in sys.modules:
        import nltk

        return nltk
    sys.modules["scipy.stats"] = None  # type: ignore[assignment]  # `from scipy.stats import …` raises ImportError
    try:
        import nltk
    finally:
        if sys.modules.get("scipy.stats", ...) is None:
            del sys.modules["scipy.stats"]
    from nltk.metrics import association

    def fisher_exact(*args, **kwargs):  # type: ignore[no-untyped-def]
        from scipy.stats import fisher_exact as scipy_fisher_exact

        return scipy_fisher_exact(*args, **kwargs)

    association.fisher_exact = fisher_exact
    return nltk


def use_bundled_nltk_data() -> None:
    """Put the shipped resources at the end of NLTK's search path (once)."""
    nltk = import_nltk()

    if BUNDLED.is_dir() and str(BUNDLED) not in nltk.data.path:
        nltk.data.path.append(str(BUNDLED))


def missing_nltk_resources() -> list[str]:
    nltk = import_nltk()
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
    nltk = import_nltk()

    return all(nltk.download(name, quiet=True) for name in NLTK_RESOURCES)
