"""`--no-progress` for the libraries underneath: transformers' weight-loading bars and datasets' map bars are
process-wide switches, so they are turned off here once rather than per call. And the libraries' warnings to each
other, which a user cannot act on."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: transformers 5 renamed gradient checkpointing to activation checkpointing; TRL still uses the old names, so
#: every DPOConfig and DPO training step warned about settings the user never made
_RENAMED_IN_LIBRARIES = r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated"


@contextmanager
def library_renames_hidden() -> Iterator[None]:
    """Within the block, no FutureWarning about names one library still uses of another's (`_RENAMED_IN_LIBRARIES`);
    every other warning shows as usual."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_RENAMED_IN_LIBRARIES, category=FutureWarning)
        yield


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
