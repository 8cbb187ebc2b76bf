"""Regenerate the golden files after an intended change of output:

    python tests/golden/regen.py

It rewrites

* tests/golden/explain/<kernel>.txt — the plain-text output of
  ``python -m systec_ref explain examples/<kernel>.ein --no-color`` for every
  example (run from the repository root; the paths in the output are relative);
* tests/golden/passes/<pass>/<case>.txt — each pass run alone on the small
  hand-written programs of ``tests/test_pass_goldens.py`` (``CASES``): its note
  and the program it produced.  Goldens of cases no longer in ``CASES`` are
  removed.

It writes what the compiler prints now and checks nothing itself; the tests do
(``tests/test_explain.py``; ``tests/test_pass_goldens.py`` also checks that each
case's output is a valid program that computes what its input does).  Review
the diff (``git diff tests/golden``) before committing it.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "explain"
PASS_GOLDEN = Path(__file__).resolve().parent / "passes"


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


def write_pass_goldens() -> None:
    """Write the golden of every case of tests/test_pass_goldens.py; remove those of no case."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_pass_goldens as cases

    written = set()
    for case in cases.CASES:
        path = cases.golden_path(case)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cases.golden_text(case))
        written.add(path)
        print(f"wrote {path}")
    for path in sorted(PASS_GOLDEN.rglob("*.txt")):
        if path not in written:
            path.unlink()
            print(f"removed {path} (no such case)")
    for d in sorted(PASS_GOLDEN.iterdir()) if PASS_GOLDEN.exists() else []:
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def main() -> None:
    sys.path.insert(0, str(ROOT))
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for ex in sorted((ROOT / "examples").glob("*.ein")):
        (GOLDEN / f"{ex.stem}.txt").write_text(explain_text(ex))
        print(f"wrote {GOLDEN / (ex.stem + '.txt')}")
    write_pass_goldens()


if __name__ == "__main__":
    main()
