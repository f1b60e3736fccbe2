"""The bootstrap's fixed settings, shared by result intervals (measure.py) and paired comparisons (report.stats):
the same seed and number of resamples everywhere make every interval reproducible."""
from __future__ import annotations

BOOTSTRAP_SEED = 20240101
BOOTSTRAP_RESAMPLES = 1000
CI_LEVEL = 0.95
#: the interval's quantiles: (1 − level) / 2 and its complement, computed this way (0.025000000000000022)
CI_QUANTILES = ((1 - CI_LEVEL) / 2, 1 - (1 - CI_LEVEL) / 2)
