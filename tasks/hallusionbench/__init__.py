"""HallusionBench (Guan et al., CVPR 2024): paired yes/no questions on original and edited figures, judged by an LLM."""
