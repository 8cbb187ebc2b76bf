"""The rule that keeps the suite honest on a new machine: every Python subprocess a test starts is
``sys.executable`` itself (conftest installs the guard; see ``helpers.interpreter_problem``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import helpers
import pytest


def test_the_guard_refuses_a_link_to_the_interpreter(tmp_path: Path) -> None:
    # what a test once did to get a PATH without Graphviz: the venv was lost, and `import rich` failed
    link = tmp_path / "python"
    link.symlink_to(sys.executable)
    with pytest.raises(AssertionError, match="a link to the project's interpreter"):
        subprocess.run([str(link), "-c", "pass"])
    with pytest.raises(AssertionError, match="a link to the project's interpreter"):
        subprocess.run("pass", executable=str(link))


def test_the_guard_refuses_another_python_and_a_shell_command() -> None:
    with pytest.raises(AssertionError, match="another Python interpreter"):
        subprocess.run(["python3", "-c", "pass"])
    with pytest.raises(AssertionError, match="another Python interpreter"):
        subprocess.run("python -c pass", shell=True)


def test_the_guard_lets_the_project_interpreter_and_other_programs_through() -> None:
    r = subprocess.run([sys.executable, "-c", "import systec_ref, rich, numpy; print('ok')"],
                       capture_output=True, text=True, env={})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert helpers.interpreter_problem("cc") is None
    assert subprocess.run(["true"]).returncode == 0


def test_the_guard_is_installed() -> None:
    assert getattr(subprocess.Popen, "_systec_guarded", False)
