"""The command line's C side: ``emit`` and ``run --backend c``.

Each test runs ``python -m systec_ref`` in a fresh process, as a user would,
with the compile cache in a directory private to this test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import helpers
import pytest

import systec_ref

CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "systec-c-cache"
    env = dict(os.environ, SYSTEC_REF_CACHE=str(cache), NO_COLOR="1")
    env["PYTHONPATH"] = os.pathsep.join([str(helpers.ROOT), *filter(None, [env.get("PYTHONPATH")])])

    def run(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "systec_ref", *map(str, args)], cwd=helpers.ROOT,
                              env={**env, **(extra_env or {})}, capture_output=True, text=True, timeout=300)

    return run


def no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout


def test_emit_prints_the_final_stage(cli):
    r = cli("emit", "examples/ssymv.ein")
    assert r.returncode == 0, r.stderr
    assert "int systec_ssymv(" in r.stdout
    assert "restrict" in r.stdout
    k = systec_ref.load(helpers.example("ssymv"))
    assert r.stdout == k.c_source()
    assert f"stage {k.stages[-1].name}" in r.stdout.splitlines()[0]
    assert "\x1b[" not in r.stdout  # piped: plain text, no colour codes


def test_emit_naive_is_the_baseline(cli):
    r = cli("emit", "examples/ssymv.ein", "--naive")
    assert r.returncode == 0, r.stderr
    k = systec_ref.load(helpers.example("ssymv"))
    assert r.stdout == k.c_source("baseline")
    assert r.stdout != k.c_source()
    assert "baseline" in r.stdout.splitlines()[0]
    assert "split-diagonals" not in r.stdout  # the symmetry passes are off


def test_emit_a_named_stage(cli):
    r = cli("emit", "examples/ssymv.ein", "--stage", "define-assignments")
    assert r.returncode == 0, r.stderr
    assert r.stdout == systec_ref.load(helpers.example("ssymv")).c_source("define-assignments")
    assert "stage define-assignments" in r.stdout.splitlines()[0]


@pytest.mark.usefixtures("c_compiler")
def test_emit_to_a_file_that_compiles(cli, tmp_path):
    out = tmp_path / "mttkrp3.c"
    r = cli("emit", "examples/mttkrp3.ein", "-o", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert out.read_text() == systec_ref.load(helpers.example("mttkrp3")).c_source()
    c = subprocess.run([CC, "-std=c99", "-c", str(out), "-o", str(tmp_path / "mttkrp3.o")],
                       capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stderr
    assert (tmp_path / "mttkrp3.o").stat().st_size > 0


def test_emit_to_an_unwritable_place(cli, tmp_path):
    r = cli("emit", "examples/ssymv.ein", "-o", tmp_path / "no" / "such" / "dir" / "x.c")
    assert r.returncode == 2
    assert "cannot write" in r.stderr
    no_traceback(r)


@pytest.mark.usefixtures("c_compiler")
def test_run_with_the_c_backend(cli):
    # wide enough that no label wraps (the table fits the terminal, 80 columns when it is not one)
    r = cli("run", "examples/mttkrp3.ein", "--size", "n=4,r=2", "--backend", "c", extra_env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr + r.stdout
    assert "C, final stage" in r.stdout and "C, baseline" in r.stdout
    assert "DISAGREE" not in r.stdout and "NO " not in r.stdout


def test_unknown_stage(cli):
    r = cli("emit", "examples/ssymv.ein", "--stage", "no-such-pass")
    assert r.returncode == 2
    assert "no stage 'no-such-pass'" in r.stderr and "define-assignments" in r.stderr
    assert r.stdout == ""
    no_traceback(r)


def test_emit_missing_file(cli):
    r = cli("emit", "examples/no-such-kernel.ein")
    assert r.returncode == 2
    assert "no such file" in r.stderr
    no_traceback(r)


def test_run_without_a_compiler(cli):
    r = cli("run", "examples/ssymv.ein", "--size", "n=3", "--backend", "c", extra_env={"CC": "/nonexistent"})
    assert r.returncode == 2
    message = r.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "/nonexistent" in message and "CC" in message
    no_traceback(r)
