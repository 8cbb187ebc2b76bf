"""What an installed package offers outside a checkout: bundled examples by name, ``--version``, the
program's name in its messages, a kernel from standard input, and ``--format json`` on run and check.

The wheel itself (built, installed in a fresh venv, run from elsewhere) is ``test_wheel.py``."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import EXAMPLES_DIR, ROOT

import systec_ref
from systec_ref import bundled, cli
from systec_ref.compare import Agreement

SYNTAX_ERROR = "kernel t\nin A[n]\nout y[n]\ny[i] += B[i]\n"


def run_module(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m systec_ref ARGS`` from ``cwd`` (not the checkout: names must find the bundled examples)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", "systec_ref", *args], cwd=cwd, capture_output=True, text=True,
                          input=stdin, timeout=300, env=env)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stderr


# -- bundled examples ------------------------------------------------------------------------------------

def test_bundled_names_are_the_examples_folder():
    on_disk = sorted(p.relative_to(EXAMPLES_DIR).with_suffix("").as_posix() for p in EXAMPLES_DIR.rglob("*.ein"))
    assert bundled.names() == on_disk
    assert "mttkrp3" in on_disk and "sparse/ssymv" in on_disk


@pytest.mark.parametrize("name", ["mttkrp3", "sparse/ssymv", "sparse/ssymv.ein", "widest"])
def test_load_by_name(name):
    k = systec_ref.load(name)
    stem = name.removesuffix(".ein")
    assert k.name == Path(stem).name
    assert k.ast.path.endswith(f"{stem}.ein")
    sparse = [t.name for t in k.ast.inputs if t.format == "sparse"]
    assert bool(sparse) == stem.startswith("sparse/")


def test_load_by_name_is_the_file_in_examples():
    text, _ = bundled.read("sparse/ssymv")
    assert text == (EXAMPLES_DIR / "sparse" / "ssymv.ein").read_text(encoding="utf-8")


def test_an_existing_path_wins_over_a_bundled_name(tmp_path, monkeypatch):
    (tmp_path / "mttkrp3").write_text((EXAMPLES_DIR / "ssymv.ein").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert systec_ref.load("mttkrp3").name == "ssymv"
    assert systec_ref.load("ttm").name == "ttm"  # no such file here: the bundled one


def test_unknown_name_lists_the_bundled_ones():
    with pytest.raises(systec_ref.SystecError) as info:
        systec_ref.load("mttkrp9")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("mttkrp9: no such file, nor a bundled example (bundled: bellman, ")
    assert "sparse/ssymv" in message and "mttkrp3" in message


def test_a_missing_ein_path_is_just_missing(tmp_path):
    with pytest.raises(systec_ref.SystecError, match=r"nope\.ein: no such file$"):
        systec_ref.load(tmp_path / "nope.ein")


def test_run_a_bundled_example_from_elsewhere(tmp_path):
    proc = run_module("run", "mttkrp3", "--size", "n=4,r=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "agree: every program matches" in proc.stdout


def test_unknown_name_on_the_command_line(tmp_path):
    err = one_line_error(run_module("show", "nosuchkernel", cwd=tmp_path))
    assert err.count("\n") == 1 and err.startswith("nosuchkernel: no such file, nor a bundled example")


# -- version and program name ----------------------------------------------------------------------------

def test_version_is_in_one_place():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert systec_ref.__version__ == declared
    assert cli.version() == declared


def test_version_flag(tmp_path):
    proc = run_module("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"systec-ref {systec_ref.__version__}\n"


def test_prog_name_follows_how_it_was_started():
    assert cli.prog_name("/venv/bin/systec-ref") == "systec-ref"
    assert cli.prog_name("/src/systec_ref/__main__.py") == "python -m systec_ref"
    assert cli.prog_name("") == "python -m systec_ref"


def test_help_and_errors_as_a_module(tmp_path):
    proc = run_module("run", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m systec_ref run")
    err = one_line_error(run_module("run", cwd=tmp_path))
    assert "python -m systec_ref run: error: the following arguments are required: kernel" in err


def test_help_and_errors_as_the_console_script(tmp_path):
    script = Path(sys.executable).parent / "systec-ref"
    # the README's setup (./dev.sh) installs the package into the venv, console script included
    assert script.exists(), f"{script} missing: set up with ./dev.sh (pip install -e .)"
    proc = subprocess.run([str(script), "check", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: systec-ref check"), proc.stderr
    proc = subprocess.run([str(script), "emit"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "systec-ref emit: error: the following arguments are required: kernel" in one_line_error(proc)
    assert "python -m" not in proc.stderr


# -- a kernel from standard input ------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["run", "--size", "n=4"], ["check", "--size", "n=4"], ["show"], ["emit"],
                                     ["explain", "--no-verify"]], ids=lambda c: c[0])
def test_kernel_from_stdin(tmp_path, command):
    source = (EXAMPLES_DIR / "ssymv.ein").read_text(encoding="utf-8")
    proc = run_module(command[0], "-", *command[1:], "--no-color", cwd=tmp_path, stdin=source)
    assert proc.returncode == 0, proc.stderr
    assert "ssymv" in proc.stdout


@pytest.mark.parametrize("command", ["run", "show", "check", "emit", "explain"])
def test_stdin_errors_are_located_at_stdin(tmp_path, command):
    err = one_line_error(run_module(command, "-", cwd=tmp_path, stdin=SYNTAX_ERROR))
    assert err.startswith("<stdin>:4:9: error: unknown tensor 'B'"), err


def test_stdin_parse_error_is_located(tmp_path):
    err = one_line_error(run_module("show", "-", cwd=tmp_path, stdin="kernel t\nin A[n\n"))
    assert err.startswith("<stdin>:2:"), err


def test_stdin_that_is_not_utf8(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "systec_ref", "show", "-"], cwd=tmp_path, capture_output=True,
                          input=b"# caf\xe9\n", timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and proc.stderr.decode().startswith("<stdin>: not UTF-8 text")


# -- --format json ---------------------------------------------------------------------------------------

def test_run_json(tmp_path):
    proc = run_module("run", "mttkrp3", "--size", "n=4,r=2", "--seed", "3", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # the whole of stdout is the document
    assert doc["command"] == "run" and doc["kernel"] == "mttkrp3"
    assert doc["sizes"] == {"n": 4, "r": 2} and doc["seed"] == 3 and doc["ok"] is True
    programs = {p["program"]: p for p in doc["programs"]}
    assert "definition" in programs and "loop nest (lower)" in programs
    for p in doc["programs"]:
        assert p["agrees"] is True and isinstance(p["max_abs_err"], float)
        assert isinstance(p["counts"]["mults"], int) and isinstance(p["counts"]["reads"]["A"], int)
    # the definition visits all 4^3 * 2 points, two multiplications each
    assert programs["definition"]["counts"]["mults"] == 2 * 4 ** 3 * 2


def test_check_json(tmp_path):
    proc = run_module("check", "sparse/ssymv", "--size", "n=6", "--density", "0.5", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["command"] == "check" and doc["kernel"] == "ssymv" and doc["ok"] is True
    assert doc["sizes"] == {"n": 6} and doc["seed"] == 0 and doc["density"] == 0.5
    assert [s["index"] for s in doc["stages"]] == list(range(len(doc["stages"])))
    assert doc["stages"][0]["name"] == "lower"
    for s in doc["stages"]:
        assert s["agrees_with_previous"] is True and s["agrees_with_definition"] is True
        assert isinstance(s["changed"], bool) and isinstance(s["counts"]["work"], int)


def _disagree(*_args, **_kw) -> Agreement:
    return Agreement(False, float("inf"), "at (0,): made up")


def test_run_json_disagreement_exits_1(monkeypatch, capsys):
    monkeypatch.setattr(cli, "agree", _disagree)
    assert cli.main(["run", "ssymv", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and not any(p["agrees"] for p in doc["programs"])
    assert doc["programs"][0]["max_abs_err"] is None and doc["programs"][0]["detail"] == "at (0,): made up"


def test_check_json_disagreement_exits_1(monkeypatch, capsys):
    # the module, not the function systec_ref.check that the package exports under the same name
    monkeypatch.setattr(importlib.import_module("systec_ref.check"), "agree", _disagree)
    assert cli.main(["check", "ssymv", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["stages"][0]["agrees_with_definition"] is False


def test_json_fields_are_documented():
    for command, keys in (("run", ("programs", "agrees", "max_abs_err", "counts", "ok")),
                          ("check", ("stages", "agrees_with_previous", "agrees_with_definition", "ok"))):
        sub = next(a for a in cli.build_parser()._actions if a.dest == "command").choices[command]
        text = sub.format_help()
        assert all(k in text for k in keys), command
