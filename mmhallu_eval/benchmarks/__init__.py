"""Benchmarks built from annotations, for any COCO-format dataset (and the shapes world): POPE's own question
sampling, MME-style yes/no pairs, FINER-style MCQ pairs, MMHal-style open questions — in the official formats."""
