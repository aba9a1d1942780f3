"""Packaging: the built wheel installs into a fresh virtual environment and trains, offline.

One test, about 20-40 s. It copies what the wheel is built from (pyproject.toml, README.md,
LICENSE, ember/) into a temporary folder, so that the build writes nothing into the checkout;
builds the wheel with pip (``--no-build-isolation --no-index --no-deps``: offline, with the
setuptools of this environment, which must satisfy the ``build-system`` requirement); checks the
build printed no warning and that the wheel carries LICENSE and the metadata; creates a fresh
virtual environment without pip; installs the wheel there with this environment's pip
(``pip --python``, ``--no-deps --no-index``: offline). The dependencies (NumPy, safetensors,
tqdm, threadpoolctl) are not downloaded: a ``.pth`` file in the new environment appends this
environment's site-packages to its path. This is what ``--system-site-packages`` would do if this
environment were the system one; the new environment's own site-packages comes first, so
``import ember`` finds the installed wheel, never the checkout (the test checks that). Then the
installed ``ember`` console script runs ``ember train --epochs 1`` in an empty folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import ember

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, **kw):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "EMBER_BACKEND", "PIP_REQUIRE_VIRTUALENV")}
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=600, **kw)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out


def test_wheel_installs_in_a_fresh_venv_and_trains_offline(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ember", src / "ember",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    build = _run([sys.executable, "-m", "pip", "wheel", ".", "-v", "--no-deps", "--no-index",
                  "--no-build-isolation", "-w", tmp_path / "dist"], cwd=src)
    log = build.stdout + build.stderr
    warnings = [line for line in log.splitlines() if re.search(r"warning", line, re.I)
                and "byte-compiling is disabled" not in line]  # PYTHONDONTWRITEBYTECODE
    assert warnings == []
    (wheel,) = (tmp_path / "dist").glob("ember-*.whl")
    assert wheel.name == f"ember-{ember.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        info = f"ember-{ember.__version__}.dist-info"
        assert z.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        meta = z.read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in meta and "Classifier: " in meta
    assert "Requires-Dist: threadpoolctl" in meta and 'extra == "cuda"' in meta

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                         "['purelib'])"], cwd=tmp_path).stdout.strip())
    (purelib / "deps-of-the-test-environment.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          wheel], cwd=tmp_path)
    where = _run([python, "-c", "import ember; print(ember.__file__, ember.__version__)"],
                 cwd=tmp_path).stdout.split()
    assert Path(where[0]).is_relative_to(purelib) and where[1] == ember.__version__
    work = tmp_path / "work"
    work.mkdir()
    train = _run([venv / "bin" / "ember", "train", "--epochs", "1", "--no-plots", "--verbose",
                  "0"], cwd=work)
    assert "trained 1 epochs" in train.stdout
    (run_dir,) = (work / "runs").iterdir()
    assert (run_dir / "model.safetensors").is_file()
