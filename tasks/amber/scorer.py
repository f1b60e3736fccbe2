"""AMBER's official scoring (`inference.py` of github.com/junyangwang0410/AMBER), restated per answer so that the
counters add up: nouns by NLTK (word_tokenize, pos_tag NN*, WordNet lemma, case kept), kept when they are object
words (relation.json), then global safe words, exact truth/hallucination matches with the association rule for
coverage, and spaCy's word-vector similarity both as a second way to hit a hallucination object (Cog) and as the
rescue that keeps a noun out of CHAIR."""
from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any, Callable

from mmhallu_eval import TaskError, use_bundled_nltk_data

from .loaders import AmberData

#: the answer the official script counts, exactly (a trailing period or other case is neither)
YES, NO = "Yes", "No"


@lru_cache(maxsize=4)
def spacy_pipeline(name: str) -> Any:
    try:
        import spacy
    except ImportError:
        raise TaskError("AMBER's synonym check needs spaCy: pip install 'mmhallu-eval[amber]' and "
                        "python -m spacy download en_core_web_lg") from None
    try:
        return spacy.load(name)
    except OSError:
        raise TaskError(f"spaCy pipeline {name!r} is not installed: python -m spacy download en_core_web_lg "
                        "(or pass amber.spacy_model=NAME_OR_FOLDER)") from None


class Similarity:
    """`nlp(word1).similarity(nlp(word2)) > threshold`, as the official script asks it, with each word's Doc and each
    pair's answer computed once (the pipeline is deterministic)."""

    def __init__(self, model: str, threshold: float):
        self.nlp = spacy_pipeline(model)
        self.threshold = threshold
        self._docs: dict[str, Any] = {}
        self._pairs: dict[tuple[str, str], bool] = {}

    def _doc(self, word: str) -> Any:
        if word not in self._docs:
            self._docs[word] = self.nlp(word)
        return self._docs[word]

    def __call__(self, word1: str, word2: str) -> bool:
        key = (word1, word2)
        if key not in self._pairs:
            with warnings.catch_warnings():  # the script silences spaCy's "empty vector" warning too
                warnings.simplefilter("ignore", UserWarning)
                self._pairs[key] = self._doc(word1).similarity(self._doc(word2)) > self.threshold
        return self._pairs[key]


def extract_nouns(text: str) -> list[str]:
    use_bundled_nltk_data()  # imports NLTK as import_nltk does
    import nltk
    from nltk.stem import WordNetLemmatizer

    lemmatizer = WordNetLemmatizer()
    tagged = nltk.pos_tag(nltk.word_tokenize(text))
    return [lemmatizer.lemmatize(word) for word, pos in tagged if pos.startswith("NN")]


def _flat(objects: list[str], association: dict[str, list[str]]) -> tuple[list[str], list[int], int]:
    """The script's word list for a set of objects: each object's associated words (tagged with the object's index)
    and then the objects themselves (tagged 0: these slots are the coverage flags)."""
    words: list[str] = []
    tags: list[int] = []
    for idx, word in enumerate(objects):
        words += association[word]
        tags += [idx] * len(association[word])
    return words + list(objects), tags + [0] * len(objects), len(objects)


def _mark(tags: list[int], j: int, n_objects: int) -> None:
    """A hit on word j: an associated word credits its object's slot, an object word its own slot."""
    if j < len(tags) - n_objects:
        tags[tags[j] + len(tags) - n_objects] = 1
    else:
        tags[j] = 1


def score_description(text: str, truth: list[str], hallu: list[str], amber: AmberData, similar: Callable[[str, str], bool]) -> dict[str, Any]:
    """One generative answer: its CHAIR, coverage, hallucination-coverage (Cog) and Hal counters."""
    try:
        safe_words, safe_list, safe_len = _flat(truth, amber.association)
        ha_words, ha_list, ha_len = _flat(hallu, amber.association)
    except KeyError as exc:
        raise TaskError(f"annotation object {exc.args[0]!r} is not a key of relation.json") from None
    nouns = [n for n in extract_nouns(text) if n in amber.vocabulary]
    hallucinated = [0] * len(nouns)
    for idx, noun in enumerate(nouns):
        if noun in amber.safe_words:
            continue
        if noun in safe_words:
            _mark(safe_list, safe_words.index(noun), safe_len)
            continue
        if noun in ha_words:
            _mark(ha_list, ha_words.index(noun), ha_len)
        # the similarity pass runs even after an exact hit, and may credit a second hallucination object
        for j, word in enumerate(ha_words):
            if similar(noun, word):
                _mark(ha_list, j, ha_len)
                break
        rescued = False
        for j, word in enumerate(safe_words):
            if similar(noun, word):
                rescued = True
                _mark(safe_list, j, safe_len)
                break
        if not rescued:
            hallucinated[idx] = 1
    covered, cog = safe_list[-safe_len:], ha_list[-ha_len:]  # [-0:] is the whole list, as in the script
    return {
        "nouns": nouns,
        "hallucinated": [n for n, flag in zip(nouns, hallucinated) if flag],
        "covered": [o for o, flag in zip(truth, covered) if flag] if safe_len else [],
        "hallucinated_objects": [o for o, flag in zip(hallu, cog) if flag] if ha_len else [],
        "counts": {
            "chair_score": sum(hallucinated), "chair_num": len(hallucinated),
            "safe_cover_score": sum(covered), "safe_cover_num": len(covered),
            "hallu_cover_score": sum(cog), "hallu_cover_num": len(cog),
            "non_hallu_score": int(sum(hallucinated) == 0), "non_hallu_num": 1,
        },
    }


def score_answer(response: str, truth: str) -> dict[str, int]:
    """One discriminative answer: "No" is the positive class; only exactly "Yes" / "No" count as answers."""
    return {
        "correct_num": 1,
        "correct_score": int((truth == "yes" and response == YES) or (truth != "yes" and response == NO)),
        "no_num": int(truth != "yes"),
        "no_score": int(truth != "yes" and response == NO),
        "ans_no_num": int(response == NO),
        "ans_no_score": int(response == NO and truth == "no"),
    }
