"""glibc malloc kept from handing freed tensor memory back to the system (`heap.tune_malloc`)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from mmhallu_eval import heap

_FAULTS = """
import resource, sys
from mmhallu_eval.heap import tune_malloc
applied = tune_malloc() if sys.argv[1] == "tune" else False
import numpy as np
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):  # a batch's activations: blocks of 1-4 MB made and freed again and again
    kept = [np.ones((1 << 18) * (1 + i % 4), dtype=np.float32) for i in range(20)]
    del kept
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


def _faults(mode: str) -> tuple[str, int]:
    # glibc's own malloc, as the machine's settings or a preloaded allocator would otherwise leave it
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in (heap.OPT_OUT, "GLIBC_TUNABLES", "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True, env=env).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_freed_blocks_are_reused_instead_of_mapped_and_faulted_in_again():
    applied, tuned = _faults("tune")
    _, default = _faults("default")
    assert applied == "True"
    assert tuned * 5 < default, (tuned, default)  # measured: 10,202 against 284,927 page faults


@pytest.mark.parametrize("name, value", [(heap.OPT_OUT, "0"), ("MALLOC_TRIM_THRESHOLD_", "1000000"), ("MALLOC_MMAP_THRESHOLD_", "65536"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000"), ("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")])
def test_a_users_own_allocator_settings_are_left_alone(monkeypatch, name, value):
    called = []
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda *a: called.append(a))
    monkeypatch.setenv(name, value)
    assert heap.tune_malloc() is False and not called


def test_the_mmhallu_command_tunes_its_own_process(monkeypatch):
    from mmhallu_eval import cli

    seen = []
    monkeypatch.setattr(heap, "tune_malloc", lambda: seen.append(True) or True)
    monkeypatch.setattr(sys, "argv", ["mmhallu", "--help"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 0 and seen == [True]
