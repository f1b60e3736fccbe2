"""AMBER (Wang et al., 2023): LLM-free generative and discriminative hallucination evaluation."""
