"""NLTK imported for scoring without SciPy's statistics, and unchanged for everything else."""
import subprocess
import sys

CHECK = """
import sys
from mmhallu_eval.nltk_resources import import_nltk
import_nltk()
assert "scipy.stats" not in sys.modules, "scipy.stats loaded by the NLTK import"
from nltk.collocations import BigramAssocMeasures
lazy = BigramAssocMeasures.fisher(3, (4, 5), 100)
from scipy.stats import fisher_exact
n_ii, n_io, n_oi = 3, 4 - 3, 5 - 3
assert lazy == fisher_exact([[n_ii, n_io], [n_oi, 100 - n_ii - n_io - n_oi]], alternative="less")[1], lazy
print("ok")
"""


def test_nltk_loads_without_scipy_stats_and_its_fisher_test_still_works():
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
