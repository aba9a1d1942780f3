"""The NumPy backend's malloc tuning: freed blocks of a few MB are kept for reuse, not unmapped."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Allocates a 40 MB array (above glibc's own dynamic mmap threshold cap of 32 MB) and reports how
# much more memory malloc then holds in mmapped blocks, read from malloc_info's XML.
PROBE = r"""
import ctypes, json, os, re, tempfile
import numpy as np
import ember
from ember.backend import numpy_backend

ember.zeros(1)  # the first op makes the backend
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]

def mmapped():
    path = tempfile.mktemp()
    fp = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    text = open(path).read()
    os.remove(path)
    return int(re.search(r'<total type="mmap" count="\d+" size="(\d+)"/>', text).group(1))

before = mmapped()
a = np.ones(5 * 2**20)  # 40 MB
after = mmapped()
print(json.dumps({"tuning": numpy_backend.malloc_tuning, "grew": after - before}))
"""


def probe(**env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="mallopt and malloc_info are glibc's")
def test_numpy_backend_keeps_large_blocks_in_the_heap():
    tuned = probe(EMBER_BACKEND="numpy")
    assert tuned == {"tuning": "on", "grew": 0}
    plain = probe(EMBER_BACKEND="numpy", EMBER_MALLOC_TUNING="0")
    assert plain["tuning"] == "off: EMBER_MALLOC_TUNING=0"
    assert plain["grew"] >= 40 * 2**20  # the control: without the tuning it is a fresh mmap
