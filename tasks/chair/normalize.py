"""CHAIR's caption normalisation (OPERA `chair.py`): lower-case, NLTK word_tokenize + pos_tag, WordNet lemmas,
two-word phrase merging, the toilet-seat rule, synonym → COCO category.

The result is identical to the official script; it is faster because every piece of per-token work is
memoised (sentence tokenisation, tagger predictions keyed on their full feature context, lemmas), the
vocabulary sets are built once instead of once per word, and a caption is tagged only as far as its last token
whose tag can change what CHAIR counts (see `Normalizer.needs_tag`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mmhallu_eval import TaskError, missing_nltk_resources, read_text

from .lemmas import Lemmas

DEFAULT_SYNONYMS = Path(__file__).with_name("synonyms.txt")
COCO_DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal", "stop light",
    "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat", "baseball glove",
    "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear", "hair drier",
    "potted plant", "bow tie", "laptop computer", "stove top oven", "home plate", "train track",
)
ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
VEHICLE_WORDS = ("jet", "train")


def check_nltk() -> None:
    """Fail with instructions when an NLTK resource CHAIR needs is missing."""
    missing = missing_nltk_resources()
    if missing:
        raise TaskError(
            f"CHAIR needs the NLTK resource(s) {', '.join(missing)}: run `mmhallu setup nltk` (downloads them) "
            "or set NLTK_DATA to a folder that has them"
        )


_RE_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.UNICODE | re.ASCII


def _to_stdlib(obj: Any) -> Any:
    """The same pattern compiled by `re` (NLTK ≥ 3.10 routes regexes through the slower `regex` engine with a
    timeout; NLTK's tokenizer patterns are plain enough that both engines agree — tested on every shared caption)."""
    inner = getattr(obj, "_rx", None)
    if inner is not None:
        return re.compile(inner.pattern, inner.flags & _RE_FLAGS)
    if isinstance(obj, re.Pattern):
        return obj
    if isinstance(obj, tuple):
        return tuple(_to_stdlib(x) for x in obj)
    if isinstance(obj, list):
        return [_to_stdlib(x) for x in obj]
    return obj


def _stdlib_regex_tokenizer(cls: type) -> Any:
    tokenizer = cls()
    for name in dir(cls):
        if name.isupper():
            try:
                setattr(tokenizer, name, _to_stdlib(getattr(cls, name)))
            except re.error:
                return cls()  # a pattern `re` cannot compile: keep NLTK's own engine
    return tokenizer


#: NLTKWordTokenizer's patterns (by their source) that cannot match a text holding none of these characters; a pattern
#: not listed (a new NLTK's) always runs
_NEEDS_ANY = {
    "([«“‘„]|[`]+)": "«“‘„`", '^\\"': '"', "(``)": "`", '([ \\(\\[{<])(\\"|\\\'{2})': "\"'",
    "(?i)(?<!\\w)(\\')(?!(?:re|ve|ll|m|t|s|d|n)\\b)(?=\\w)": "'",
    '([^\\.])(\\.)([\\]\\)}>"\\\'»”’ ]*+)\\s*$': ".", "([:,])([^\\d])": ":,", "([:,])$": ":,", "\\.{2,}": ".",
    "[;@#$%&]": ";@#$%&", "[\\u2012-\\u2015]": "\u2012\u2013\u2014\u2015", '([^\\.])(\\.)([\\]\\)}>"\\\']*)\\s*$': ".",
    "[?!]": "?!", "([^'])' ": "'", "[*]": "*",
    "([»”’])": "»”’", "''": "'", '"': '"', "([^' ])('[sS]|'[mM]|'[dD]|') ": "'",
    "([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ": "'",
    "[\\]\\[\\(\\)\\{\\}\\<\\>]": "][(){}<>", "--": "-",
    "(?i) ('t)(?#X)(is)\\b": "'", "(?i) ('t)(?#X)(was)\\b": "'",
}
#: the MacIntyre contractions ("(?i)\b(can)(?#X)(not)\b"): a match needs the word written out, in any case
_CONTRACTION = re.compile(r"\(\?i\)\\b\(([a-z']+)\)\(\?#X\)\(([a-z']+)\)(?:\\b|\(\?=\\s\))")


class _WordTokenizer:
    """NLTKWordTokenizer.tokenize with its patterns compiled by `re`, skipping each substitution that cannot match:
    one whose required characters are all absent from the text (a membership test instead of a regex scan; a
    sentence typically needs 6 of NLTK's 33). The patterns, their order and their replacements are NLTK's own
    (tested against `nltk.word_tokenize` on every shared caption and on generated strings)."""

    def __init__(self, cls: type):
        tok = _stdlib_regex_tokenizer(cls)

        def step(rx: Any, sub: str) -> tuple[Any, str, str | None, str | None]:
            source = getattr(rx, "pattern", "")
            words = _CONTRACTION.fullmatch(source)
            return rx, sub, _NEEDS_ANY.get(source), "".join(words.groups()) if words else None

        self.head = [step(rx, sub) for rx, sub in (*tok.STARTING_QUOTES, *tok.PUNCTUATION, tok.PARENS_BRACKETS, tok.DOUBLE_DASHES)]
        self.tail = [step(rx, sub) for rx, sub in tok.ENDING_QUOTES] + [step(rx, r" \1 \2 ") for rx in (*tok.CONTRACTIONS2, *tok.CONTRACTIONS3)]

    def tokenize(self, text: str) -> list[str]:
        ascii_lower = text.lower() if text.isascii() else None  # case-blind words are checked on ASCII text only
        for steps in (self.head, self.tail):
            if steps is self.tail:
                text = " " + text + " "
            for rx, sub, needs_any, word in steps:
                if needs_any is not None and not any(c in text for c in needs_any):
                    continue
                if word is not None and ascii_lower is not None and word not in ascii_lower:
                    continue
                text = rx.sub(sub, text)
        return text.split()


@dataclass(frozen=True)
class Vocabulary:
    """Synonym table and phrase rules. Lines are split on ", " exactly, keeping the list's quirks
    (the double space in "scooter,  motor bike" makes " motor bike" unmatchable, as in the original)."""

    objects: frozenset[str]
    to_category: dict[str, str]
    double_words: dict[str, str]

    @classmethod
    def from_text(cls, text: str) -> "Vocabulary":
        to_category: dict[str, str] = {}
        objects: set[str] = set()
        for line in text.splitlines():
            names = line.strip().split(", ")
            objects.update(names)
            for name in names:
                to_category[name] = names[0]
        double = {w: w for w in COCO_DOUBLE_WORDS}
        for animal in ANIMAL_WORDS:
            double[f"baby {animal}"] = animal
            double[f"adult {animal}"] = animal
        for vehicle in VEHICLE_WORDS:
            double[f"passenger {vehicle}"] = vehicle
        double["bow tie"] = "tie"
        double["toilet seat"] = "toilet"
        double["wine glas"] = "wine glass"
        return cls(frozenset(objects), to_category, double)

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> "Vocabulary":
        path = Path(path) if path else DEFAULT_SYNONYMS
        if not path.is_file():
            raise TaskError(f"{path}: CHAIR synonyms file not found")
        return cls.from_text(read_text(path))

    def categories(self) -> set[str]:
        return set(self.to_category.values())


@dataclass
class CaptionWords:
    words: list[str]  # object words as written (after lemmatisation and phrase merging)
    categories: list[str]  # their COCO categories, one per mention
    n_tokens: int  # tokens after phrase merging (OPERA's "Len" counts these)


class Normalizer:
    """Caption → object mentions, exactly as OPERA's `CHAIR.caption_to_words`."""

    def __init__(self, vocab: Vocabulary):
        check_nltk()
        import nltk
        from nltk.corpus.reader.wordnet import ADJ, ADV, NOUN, VERB
        from nltk.tag import _get_tagger
        from nltk.tokenize import NLTKWordTokenizer

        self.vocab = vocab
        self._nltk = nltk
        self._tagger = _get_tagger("eng")
        self._word_tokenizer = _WordTokenizer(NLTKWordTokenizer)
        self._pos = {"J": ADJ, "V": VERB, "N": NOUN, "R": ADV}  # by a tag's first letter; any other tag is a noun
        self._pos_letters = tuple(dict.fromkeys([*self._pos.values(), NOUN]))  # every part of speech a tag can select
        self._predictions: dict[tuple[str, ...], str] = {}
        self._classes = sorted(self._tagger.classes)
        self._class_index = {c: i for i, c in enumerate(self._classes)}
        self._vectors: dict[str, "np.ndarray | None"] = {}
        self.lemmas = Lemmas()  # WordNet itself loads only for a (word, pos) pair not seen in an earlier run
        self._sentences: dict[str, list[str]] = {}
        # every word a lemma must equal for CHAIR to count something: object names, the words of the two-word
        # phrases, and the toilet-seat rule's
        self._counted = frozenset(vocab.objects | {w for phrase in vocab.double_words for w in phrase.split(" ")} | {"toilet", "seat"})
        self._needs: dict[str, bool] = {}
        #: words `needs_tag` met whose lemmas are not all in the table yet (for `learn`)
        self.unlearned: set[str] = set()

    def tokenize(self, text: str) -> list[str]:
        """nltk.word_tokenize: Punkt sentences, then NLTKWordTokenizer per sentence (memoised)."""
        out: list[str] = []
        for sent in self._nltk.sent_tokenize(text):
            tokens = self._sentences.get(sent)
            if tokens is None:
                tokens = self._sentences[sent] = self._word_tokenizer.tokenize(sent)
            out.extend(tokens)
        return out

    def tag(self, tokens: list[str], upto: int | None = None) -> list[str]:
        """PerceptronTagger.tag with each prediction memoised on everything its features read; the tags of the first
        `upto` tokens only, when given (a tag depends on the words around it and the tags before it, never after)."""
        tagger = self._tagger
        prev, prev2 = tagger.START
        upto = len(tokens) if upto is None else upto
        seen = tokens[: upto + 2]  # a word's features read the two words after it
        context = tagger.START + [tagger.normalize(w) for w in seen] + (tagger.END if len(seen) == len(tokens) else [])
        tags = []
        for i, word in enumerate(tokens[:upto]):
            tag = tagger.tagdict.get(word)
            if not tag:
                key = (word, prev, prev2, *context[i : i + 5])
                tag = self._predictions.get(key)
                if tag is None:
                    tag = self._predictions[key] = self._predict(tagger._get_features(i, word, context, prev, prev2))
            tags.append(tag)
            prev2, prev = prev, tag
        return tags

    def _predict(self, features: dict[str, int]) -> str:
        """AveragedPerceptron.predict on dense class vectors: per class the same additions in the same
        feature order (absent classes add an exact 0.0), ties broken by the larger label, as NLTK does."""
        acc = np.zeros(len(self._classes))
        for feat, value in features.items():
            vec = self._vectors.get(feat, False)
            if vec is False:
                vec = self._vectors[feat] = self._dense(feat)
            if vec is None or value == 0:
                continue
            acc += vec if value == 1 else value * vec
        best = acc.max()
        return self._classes[int(np.flatnonzero(acc == best)[-1])]

    def _dense(self, feat: str) -> "np.ndarray | None":
        weights = self._tagger.model.weights.get(feat)
        if weights is None:
            return None
        vec = np.zeros(len(self._classes))
        for label, weight in weights.items():
            vec[self._class_index[label]] = weight
        return vec

    def pos_of(self, tag: str) -> str:
        """The WordNet part of speech OPERA lemmatises a word of this tag as."""
        return self._pos.get(tag[:1], "n")

    def needs_tag(self, word: str) -> bool:
        """Whether the word's tag can change CHAIR's result: its lemmas under the parts of speech a tag can select
        differ and one of them is a word CHAIR counts. Any other word's lemma takes part in no object, phrase or
        rule, and merging counts it as one token whatever it is. True when a lemma is not in the table yet."""
        needed = self._needs.get(word)
        if needed is None:
            lemmas = {self.lemmas.known(word, pos) for pos in self._pos_letters}
            if None in lemmas:
                self.unlearned.add(word)
                return True
            needed = self._needs[word] = len(lemmas) > 1 and not self._counted.isdisjoint(lemmas)
        return needed

    def learn(self, words: Iterable[str]) -> None:
        """Put the lemmas `needs_tag` reads into the table for these words (WordNet loads if one is new)."""
        for word in words:
            if word not in self._needs:
                for pos in self._pos_letters:
                    self.lemmas(word, pos)

    def tagged(self, caption: str) -> tuple[list[str], list[str]]:
        """The lower-cased caption's tokens and the tags of as many as CHAIR needs (the part worth spreading over
        processes): up to the last token whose tag matters."""
        tokens = self.tokenize(caption.lower())
        needed = [self.needs_tag(w) for w in tokens]  # every word asked, so `unlearned` lists all the table lacks
        upto = next((i + 1 for i in range(len(tokens) - 1, -1, -1) if needed[i]), 0)
        return tokens, self.tag(tokens, upto)

    def caption_words(self, caption: str) -> CaptionWords:
        words = self.words_of(*self.tagged(caption))
        assert words is not None
        return words

    def words_of(self, tokens: list[str], tags: list[str], stored_only: bool = False) -> CaptionWords | None:
        """Object words from the tokens and the tags of the first len(tags) of them: the untagged ones are words whose
        tag cannot matter (see `needs_tag`), lemmatised as nouns. `stored_only`: None instead of consulting WordNet
        for a lemma not in the table (worker processes leave those captions to the process that owns the table)."""
        pos = [self.pos_of(t) for t in tags] + ["n"] * (len(tokens) - len(tags))
        if stored_only:
            lemmas = [self.lemmas.known(w, p) for w, p in zip(tokens, pos)]
            if None in lemmas:
                return None
        else:
            lemmas = [self.lemmas(w, p) for w, p in zip(tokens, pos)]
        merged: list[str] = []
        double = self.vocab.double_words
        i = 0
        while i < len(lemmas):
            pair = " ".join(lemmas[i : i + 2])
            if pair in double:
                merged.append(double[pair])
                i += 2
            else:
                merged.append(lemmas[i])
                i += 1
        words = merged
        if "toilet" in words and "seat" in words:
            words = [w for w in words if w != "seat"]
        objects = self.vocab.objects
        words = [w for w in words if w in objects]
        return CaptionWords(words, [self.vocab.to_category[w] for w in words], len(merged))  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def normalizer_for(synonyms_path: str | None = None) -> Normalizer:
    return Normalizer(Vocabulary.from_file(synonyms_path))
