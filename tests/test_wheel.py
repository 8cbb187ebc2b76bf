"""The wheel works outside the checkout: build it, install it into a new virtual environment, and run,
from a folder that is not the checkout, the README's quickstart and the commands a new user would.

Nothing is downloaded.  The wheel is built by this venv's setuptools (no build isolation) from a copy of
the sources (so the checkout gets no build/ folder and parallel runs do not share one).  The new venv
has no pip and no packages of its own: the wheel goes in with ``--no-deps`` (pip's ``--python`` installs
into it), and its dependencies come from this venv's site-packages through a ``.pth`` file.  That file
adds a folder to ``sys.path`` without running the ``.pth`` files in it, so this venv's editable install
of the checkout stays out: ``systec_ref`` must come from the new venv (checked).

The suite's guard refuses to start any Python interpreter but ``sys.executable``; the installed programs
are started the way a user starts them, as scripts whose first line names the new venv's interpreter
(the ``systec-ref`` console script, and the quickstart written to a file with such a line).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers import EXAMPLES_DIR, ROOT

import systec_ref

pytestmark = pytest.mark.slow

#: the quickstart's Python block in README.md, between these markers
QUICKSTART = re.compile(r"<!-- quickstart -->\s*```python\n(?P<code>.*?)```\s*<!-- /quickstart -->", re.S)
#: what the wheel is built from: the package, its data (examples/, linked from systec_ref/examples) and metadata
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "systec_ref", "examples")


def quickstart_code() -> str:
    m = QUICKSTART.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert m, "README.md has no ```python block between <!-- quickstart --> and <!-- /quickstart -->"
    return m.group("code")


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(out), str(src)], cwd=src)
    (whl,) = out.glob("systec_ref-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    """A new venv (outside the checkout) with the wheel installed and this venv's packages visible."""
    home = tmp_path_factory.mktemp("venv") / "v"
    _run([sys.executable, "-m", "venv", "--without-pip", str(home)], cwd=home.parent)
    python = home / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=home.parent)
    purelib = next((home / "lib").glob("python*/site-packages"))
    (purelib / "repo_venv_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return home


@pytest.fixture(scope="module")
def user(venv: Path, tmp_path_factory):
    """Run a program of the new venv as a user would: from an empty folder, nothing of the checkout on
    PYTHONPATH, a private cache of compiled C."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "NO_COLOR")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["SYSTEC_REF_CACHE"] = str(tmp_path_factory.mktemp("c-cache"))

    def run(*argv: str, timeout: int = 600) -> str:
        return _run([str(venv / "bin" / argv[0]), *argv[1:]], cwd=cwd, env=env, timeout=timeout)

    def python(code: str, name: str = "snippet") -> str:
        script = cwd / name
        script.write_text(f"#!{venv / 'bin' / 'python'}\n{code}", encoding="utf-8")
        script.chmod(0o755)
        return _run([str(script)], cwd=cwd, env=env)

    run.python = python
    run.cwd = cwd
    return run


def test_wheel_carries_license_types_and_examples(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        files = set(z.namelist())
        metadata = z.read(next(f for f in files if f.endswith(".dist-info/METADATA"))).decode()
    assert any(f.endswith(".dist-info/LICENSE") for f in files)
    assert "License-File: LICENSE" in metadata
    assert f"Version: {systec_ref.__version__}" in metadata
    assert "systec_ref/py.typed" in files
    bundled = {f"systec_ref/examples/{p.relative_to(EXAMPLES_DIR).as_posix()}" for p in EXAMPLES_DIR.rglob("*.ein")}
    assert bundled and bundled <= files


def test_installed_package_is_the_wheel_not_the_checkout(user, venv: Path):
    where = user.python("import numpy, systec_ref\nprint(systec_ref.__file__)\n", "where")
    assert Path(where.strip()).resolve().is_relative_to(venv.resolve()), where
    assert not Path(where.strip()).resolve().is_relative_to(ROOT)


def test_readme_quickstart(user):
    assert "quickstart ok" in user.python(quickstart_code(), "quickstart")


def test_version(user):
    assert user("systec-ref", "--version") == f"systec-ref {systec_ref.__version__}\n"


def test_run_bundled_example_in_c(user):
    out = user("systec-ref", "run", "mttkrp3", "--backend", "c")
    assert out.rstrip().splitlines()[-1].startswith("agree: every program matches")
    # (the table's labels wrap to the terminal's width: the program names from the JSON)
    doc = json.loads(user("systec-ref", "run", "mttkrp3", "--backend", "c", "--format", "json"))
    assert doc["ok"] is True and "C, final stage" in [p["program"] for p in doc["programs"]]


def test_explain_bundled_sparse_example(user):
    out = user("systec-ref", "explain", "sparse/ssymv", "--no-verify", "--no-color")
    assert "sparse-iterate" in out


def test_check_json_of_a_bundled_example(user):
    doc = json.loads(user("systec-ref", "check", "ssymv", "--format", "json"))
    assert doc["kernel"] == "ssymv" and doc["ok"] is True


def test_bench_quick(user, tmp_path: Path):
    user("systec-ref", "bench", "--quick", "--kernel", "ssymv", "--repeats", "1", "--out", str(tmp_path / "b"),
         "--no-color")
    doc = json.loads((tmp_path / "b" / "results.json").read_text(encoding="utf-8"))
    kernels = {c["kernel"].split("/")[0] for c in doc["cases"]}
    assert kernels == {"ssymv"}, kernels
