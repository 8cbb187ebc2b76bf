"""Regenerate the golden files after an intended change of output:

    python tests/golden/regen.py

It rewrites tests/golden/explain/<kernel>.txt — the plain-text output of
``python -m systec_ref explain examples/<kernel>.ein --no-color`` for every
example (run from the repository root; the paths in the output are relative).
Review the diff (``git diff tests/golden``) before committing it.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "explain"


def explain_text(example: Path) -> str:
    """What ``explain`` prints for ``example`` (relative to the repository root)."""
    from systec_ref.cli import main

    buf = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(buf):
            status = main(["explain", str(example.relative_to(ROOT)), "--no-color"])
    finally:
        os.chdir(cwd)
    if status != 0:
        raise SystemExit(f"explain {example} exited {status}")
    return buf.getvalue()


def main() -> None:
    sys.path.insert(0, str(ROOT))
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for ex in sorted((ROOT / "examples").glob("*.ein")):
        (GOLDEN / f"{ex.stem}.txt").write_text(explain_text(ex))
        print(f"wrote {GOLDEN / (ex.stem + '.txt')}")


if __name__ == "__main__":
    main()
