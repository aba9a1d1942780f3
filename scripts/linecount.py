"""Count the lines of code of ember's autograd core (what the README states).

Counts lines that hold code in the core files: blank lines, comments and docstrings are left out.
Run ``python scripts/linecount.py`` for the total, ``-v`` for a per-file breakdown.
"""

from __future__ import annotations

import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "ember"
CORE = ["tensor.py", "function.py", "creation.py", "random.py", "gradcheck.py", "ops", "backend"]
NOT_CORE = {"testing/table.py"}  # the gradcheck table of test cases (tests and `ember gradcheck`)
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENDMARKER, tokenize.ENCODING}


def code_lines(source: str) -> int:
    """Lines holding a token that is not a comment, a docstring or layout."""
    lines: set[int] = set()
    at_statement_start = True
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in _SKIP:
            if tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                at_statement_start = True
            continue
        if tok.type == tokenize.STRING and at_statement_start:
            at_statement_start = False  # a bare string statement: a docstring
            continue
        at_statement_start = False
        lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


def core_files() -> list[Path]:
    files: list[Path] = []
    for name in CORE:
        path = ROOT / name
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    files = [f for f in files if f.relative_to(ROOT).as_posix() not in NOT_CORE]
    return files


def count() -> dict[str, int]:
    return {str(p.relative_to(ROOT.parent)): code_lines(p.read_text()) for p in core_files()}


if __name__ == "__main__":
    counts = count()
    if "-v" in sys.argv:
        for name, n in counts.items():
            print(f"{n:6d}  {name}")
    print(sum(counts.values()))
