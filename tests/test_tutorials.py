"""The tutorials run, and print what their recorded documents say they print.

Each ``tutorials/NN_slug.py`` is executed cell by cell by ``tutorials/run.py``
into a temporary directory and compared with the committed
``tutorials/out/NN_slug.md`` and its ``.dot`` diagrams; machine-dependent
figures are recorded as placeholders on both sides (``tutorials_support.live``),
so only they are excluded.  After an intended change of output, regenerate with
``python tutorials/run.py`` and review the diff.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from systec_ref.rewrite import pipeline

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
if str(TUTORIALS) not in sys.path:
    sys.path.insert(0, str(TUTORIALS))


def _load_runner():
    spec = importlib.util.spec_from_file_location("tutorials_run", TUTORIALS / "run.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


run = _load_runner()
PATHS = run.discover()
#: the tutorials that print machine-dependent figures (tutorial 10 times C kernels: about 3 s from a cold
#: compiler cache, well under the 10 s that would make it a slow test)
LIVE = {"10_c_backend"}


def test_tutorials_exist():
    assert len(PATHS) >= 11, [p.name for p in PATHS]
    assert [p.name[:2] for p in PATHS] == [f"{n:02d}" for n in range(len(PATHS))], "numbered 00, 01, ... in order"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_tutorial_runs_and_matches_its_recorded_output(path: Path, tmp_path: Path):
    recorded = run.recorded_files(run.OUT, path.stem)
    assert f"{path.stem}.md" in recorded, f"no recorded output: run 'python tutorials/run.py {path.stem[:2]}'"
    run.execute(path, tmp_path, render=False)  # raises if the tutorial does (a failed claim is an assert)
    diff = run.compare(run.OUT, tmp_path, path.stem)
    assert not diff, (f"{path.stem} prints something else than tutorials/out/{path.stem}.md records; if the change "
                      f"is intended, run 'python tutorials/run.py {path.stem[:2]}' and review the diff:\n{diff}")


def test_only_live_values_are_masked():
    """The placeholder appears only where a tutorial printed through ``live`` (tutorial 10's timings)."""
    for md in sorted(run.OUT.glob("*.md")):
        if md.stem not in LIVE:
            assert "⟨machine-dependent⟩" not in md.read_text(encoding="utf-8").replace("`⟨machine-dependent⟩`", ""), md


def _taught_passes() -> dict[str, list[str]]:
    """pass name -> tutorials whose recorded document shows its before/after diagram."""
    taught: dict[str, list[str]] = {}
    pattern = re.compile(r"!\[[^\]]*\]\(([0-9]{2}_[a-z0-9_]+)/[^)]*?-\d{2}-([a-z-]+)\.pass\.svg\)")
    for md in sorted(run.OUT.glob("*.md")):
        for tutorial, name in pattern.findall(md.read_text(encoding="utf-8")):
            taught.setdefault(name, []).append(tutorial)
    return taught


def test_every_pass_is_taught():
    """Every pass of the pipeline is shown before/after in at least one tutorial."""
    taught = _taught_passes()
    missing = [p.name for p in pipeline.PASSES if p.name not in taught]
    assert not missing, f"passes no tutorial shows (with tutorials_support.show_pass/diagram): {missing}"


def test_readme_lists_every_tutorial():
    readme = (TUTORIALS / "README.md").read_text(encoding="utf-8")
    for p in PATHS:
        assert f"({p.name})" in readme, f"tutorials/README.md does not link {p.name}"
        assert f"(out/{p.stem}.md)" in readme, f"tutorials/README.md does not link out/{p.stem}.md"
    assert "./dev.sh setup" in readme and "python tutorials/run.py" in readme


def test_cells_parse():
    """Every tutorial is a percent-format script whose markdown cells are comment lines only."""
    for p in PATHS:
        cells = run.parse(p.read_text(encoding="utf-8"))
        assert cells[0].kind == "markdown" and cells[0].text.startswith("# "), p.name
        assert any(c.kind == "code" for c in cells), p.name
        assert "## Exercise" in cells[-1].text, f"{p.name} does not end with an exercise"
