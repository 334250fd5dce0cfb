"""``ww_ray.allocator``: with the mmap threshold pinned, freed mid-size arrays go back to the OS.

Each case runs in a fresh interpreter (the allocator is process state): free one 16 MiB mapped
block (glibc's dynamic threshold rises to it), then write twenty 8 MiB arrays and free all but the
last. Pinned, each array was its own mapping and the process keeps ~8 MiB; left dynamic
(``WW_RAY_KEEP_MALLOC=1``), the arrays sat in the heap below the live one and ~160 MiB stay resident.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import numpy as np, psutil
    from ww_ray.allocator import pin_mmap_threshold
    pinned = pin_mmap_threshold()
    rss = lambda: psutil.Process().memory_info().rss
    big = np.ones(2 << 20); del big
    base = rss()
    arrays = [np.ones(1 << 20) for _ in range(20)]
    keep = arrays[-1]
    del arrays
    print(pinned, (rss() - base) / 2**20)
""")


def _probe(**env: str) -> tuple[bool, float]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, **env})
    pinned, kept_mib = out.stdout.split()
    return pinned == "True", float(kept_mib)


GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not GLIBC, reason="glibc's mallopt is absent (not a glibc Linux): the pin is a no-op")


@needs_glibc
def test_pinned_threshold_returns_freed_arrays_to_the_os():
    pinned, kept_mib = _probe()
    assert pinned, "pin_mmap_threshold() did not pin on glibc"
    assert kept_mib < 40, f"{kept_mib:.0f} MiB still resident after freeing 152 MiB of arrays"


@needs_glibc
def test_keep_malloc_leaves_the_dynamic_threshold_and_its_retention():
    pinned, kept_mib = _probe(WW_RAY_KEEP_MALLOC="1")
    assert not pinned
    assert kept_mib > 100, f"only {kept_mib:.0f} MiB kept: the probe no longer shows glibc's retention"
