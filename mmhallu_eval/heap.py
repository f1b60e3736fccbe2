"""Keeping the process's heaps out of generation's way. Python's cycle collector: once torch, transformers or vLLM
and a model are loaded, a full collection walks millions of objects that stay alive for the whole run (100-400 ms
per collection measured in a vLLM process on a 2-core CPU), and it lands in the middle of generation at random.
The C heap: with glibc's default settings every activation tensor above 128 KB is a fresh `mmap` whose pages fault
in one by one and go back to the system when it is freed (40,000 page faults and 60 ms of system time per
32-question batch of the demo model on 2 cores)."""
from __future__ import annotations

import ctypes
import gc
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager

#: `mallopt` parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: the largest `mmap` threshold glibc accepts on a 64-bit system: blocks below it are reused from the heap
MMAP_THRESHOLD = 32 << 20
#: freed memory at the heap's top is handed back to the system only beyond this (the largest value `mallopt` takes)
TRIM_THRESHOLD = (1 << 31) - 1
#: set to 0 to leave glibc's malloc as it is
OPT_OUT = "MMHALLU_TUNE_MALLOC"
#: a user's own allocator or malloc settings win
_OWN_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def tune_malloc() -> bool:
    """Keep freed blocks up to 32 MB in the process (reused by the next batch's tensors instead of mapped and
    faulted in again); what the PyTorch CPU guides get from tcmalloc or jemalloc, without a preloaded library.
    Answers are unchanged (PyTorch aligns every tensor to 64 bytes either way); the cost is that a process keeps
    its peak memory until it exits (the demo's peak RSS 0.94 → 1.05 GB, and 27 s faster). Done once by the `mmhallu`
    command for its own process; skipped outside glibc, with `MMHALLU_TUNE_MALLOC=0`, or when the user set
    `MALLOC_*_` variables, glibc malloc tunables or preloaded another allocator. True when applied."""
    if os.environ.get(OPT_OUT, "1") == "0" or any(v in os.environ for v in _OWN_SETTINGS):
        return False
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "") or any(a in os.environ.get("LD_PRELOAD", "") for a in _OTHER_ALLOCATORS):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # both: setting either one stops glibc adjusting the other, and each alone was slower than the default (211 and
    # 285 against 183 ms per batch of the demo model; both: 143 ms)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Garbage is collected once on entry (what an earlier stage left — a trained model in a reference cycle — must
    not stay in memory for the whole run), then everything still alive is left out of cycle collection until exit
    (`gc.freeze`) and handed back after (`gc.unfreeze`). Objects made inside are collected as usual. When the program
    has already frozen objects, that is its business: left alone."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
