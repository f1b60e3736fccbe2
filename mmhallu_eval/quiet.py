"""`--no-progress` for the libraries underneath: transformers' weight-loading bars and datasets' map bars are
process-wide switches, so they are turned off here once rather than per call."""
from __future__ import annotations


def hide_library_progress_bars() -> None:
    """Turn off transformers' and datasets' progress bars for this process (each only if it is installed)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        pass
    else:
        hf_logging.disable_progress_bar()
    try:
        import datasets
    except ImportError:
        pass
    else:
        datasets.disable_progress_bars()
