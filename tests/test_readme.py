"""Every ```python block in the README runs as written (each in a fresh interpreter)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMBER_BACKEND": "numpy"}
    done = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"README block {index} failed:\n{BLOCKS[index]}\n{done.stderr}"


TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(TOML_BLOCKS)))
def test_readme_config_is_valid(index, tmp_path, capsys):
    from ember.cli import main

    config = tmp_path / "readme.toml"
    config.write_text(TOML_BLOCKS[index])
    assert main(["summary", str(config)]) == 0, capsys.readouterr().err
    assert "Total params" in capsys.readouterr().out


def test_readme_setup_commands_are_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'readme_command main' in ci and 'readme_command test' in ci
    readme = (ROOT / "README.md").read_text()
    main = re.search(r"<!-- ci:main -->\s*```bash\n(.+?)\n", readme).group(1)
    assert main.endswith("&& ember train"), main
