"""ember.set_num_threads / get_num_threads over BLAS (threadpoolctl) and XLA; EMBER_NUM_THREADS."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap

import pytest
from threadpoolctl import threadpool_info

import ember
from ember.backend import threads


def _blas_threads():
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas"}


@pytest.fixture
def restore_threads():
    before = _blas_threads()
    flags = os.environ.get("XLA_FLAGS")
    yield
    from threadpoolctl import ThreadpoolController

    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        if lib.filepath in before:
            lib.set_num_threads(before[lib.filepath])
    if flags is None:
        os.environ.pop("XLA_FLAGS", None)
    else:
        os.environ["XLA_FLAGS"] = flags


_NO_XLA_WARNING = pytest.mark.filterwarnings("ignore:ember.set_num_threads.*JAX has already")


@_NO_XLA_WARNING
def test_set_num_threads_is_observable_through_threadpoolctl(restore_threads):
    assert _blas_threads(), "NumPy's BLAS should be loaded"
    ember.set_num_threads(1)
    assert set(_blas_threads().values()) == {1}
    assert ember.get_num_threads() == 1
    ember.set_num_threads(2)
    assert set(_blas_threads().values()) <= {2}  # a library keeps at most its own maximum
    assert ember.get_num_threads() == max(_blas_threads().values())


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_counts_are_refused(bad):
    with pytest.raises(ValueError, match=rf"ember.set_num_threads: n must be a positive int, "
                       rf"got {bad!r}"):
        ember.set_num_threads(bad)


def _python(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", threads.ENV)}
    full.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full,
                          capture_output=True, text=True, timeout=300)


def test_environment_variable_sets_blas_and_xla_before_jax_starts():
    out = _python("""
        import os, ember
        from threadpoolctl import threadpool_info
        print(sorted({l["num_threads"] for l in threadpool_info() if l["user_api"] == "blas"}))
        print(os.environ["XLA_FLAGS"])
        """, EMBER_NUM_THREADS="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[1]", "--xla_cpu_multi_thread_eigen=false"]
    bad = _python("import ember", EMBER_NUM_THREADS="two")
    assert bad.returncode == 1
    assert "EMBER_NUM_THREADS='two' is not a positive integer; unset it or give a number of " \
           "threads, e.g. EMBER_NUM_THREADS=1" in bad.stderr


def test_after_jax_started_xla_keeps_its_threads_with_a_warning():
    out = _python("""
        import warnings, ember, jax.numpy as jnp
        jnp.ones(2).block_until_ready()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            ember.set_num_threads(1)
        print(ember.get_num_threads(), str(w[0].message))
        """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1 ember.set_num_threads(1): JAX has already started, so XLA "
                                 "keeps its CPU threads; call it before the first JAX "
                                 "computation, or set EMBER_NUM_THREADS=1 in the environment")


@_NO_XLA_WARNING
def test_cli_threads_flag_and_info(tmp_path, restore_threads):
    from ember.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--preset", "xor", "--epochs", "1", "--no-plots", "--threads", "1",
                     "--runs-dir", str(tmp_path), "--verbose", "0"]) == 0
    assert ember.get_num_threads() == 1
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["info"]) == 0
    text = out.getvalue()
    lib = threads.blas_info()[0]
    assert f"BLAS: {lib['internal_api']} {lib['version']}" in text
    assert f"threads: 1 of {os.cpu_count()} CPUs" in text
