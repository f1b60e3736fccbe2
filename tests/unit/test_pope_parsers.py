import pytest

from mmhallu_tasks.pope.parsers import pope_official, pope_opera, strict

# (text, pope-official, pope-opera, strict)
CASES = [
    ("Yes", "yes", "yes", "yes"),
    ("No", "no", "no", "no"),
    ("no", "no", "no", "no"),
    ("NO", "yes", "no", "no"),  # official quirk: upper-case NO is not a no-word
    ("Nope", "yes", "yes", None),
    ("No\n", "yes", "yes", "no"),  # official quirk: "No\n" is one word ≠ "No"
    ("", "yes", "yes", None),  # official quirk: empty answer counts as yes
    ("There isn't a dog.", "yes", "no", None),  # n't only counts for OPERA
    ("There is not a dog in the image.", "no", "no", None),
    ("Yes. There is no cat besides the dog.", "yes", "no", "yes"),  # official keeps only the first sentence
    ("No, there is no dog.", "no", "no", "no"),
    ("No,there is a dog", "yes", "yes", "no"),  # ',' removed → "Nothere": no word matches
    ("Yes, no doubt", "no", "no", "yes"),
    ("**Yes**", "yes", "yes", "yes"),
    ("It is not.", "no", "no", None),
    ("no.", "no", "no", "no"),
    (".no", "yes", "no", None),  # official: text before the first '.' is empty
    ("yes  no", "no", "no", "yes"),  # split on single spaces leaves an empty word, 'no' still found
]


@pytest.mark.parametrize("text,official,opera,strict_label", CASES)
def test_pope_parsers_table(text, official, opera, strict_label):
    assert pope_official(text) == official
    assert pope_opera(text) == opera
    assert strict(text) == strict_label
