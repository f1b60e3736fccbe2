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


def test_setup_nltk_offline_says_scoring_does_not_need_the_download(monkeypatch):
    from typer.testing import CliRunner

    import mmhallu_eval.nltk_resources as resources
    from mmhallu_eval.cli import app

    monkeypatch.setattr(resources, "download_nltk_resources", lambda: False)  # no network: every download fails
    result = CliRunner().invoke(app, ["setup", "nltk"])
    assert result.exit_code == 2
    assert "the parts scoring reads ship with mmhallu-eval" in result.output and "resources ;" not in result.output
