"""The compiled-kernel cache (issue 4, item 3).

The compiler is a wrapper script around the real one that logs every
compilation (the ``--version`` probe is not logged), so a test can count how
often the compiler really ran.  Each test gets an empty cache directory and
empty in-process tables (``build._loaded``, ``build._versions``); the wrapper's
path is part of the cache key, so no test ever loads a shared object that an
earlier one loaded (a process cannot dlopen a rebuilt file under a name it
already has open).
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import helpers
import numpy as np
import pytest

import systec_ref
from systec_ref.emit import build
from systec_ref.emit.c import emit_c
from systec_ref.emit.runtime import CFunction

REAL_CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")
pytestmark = pytest.mark.usefixtures("c_compiler")


def make_wrapper(tmp_path: Path, barrier: int = 0) -> tuple[Path, Path]:
    """A CC that appends its command line to a log on every compilation, then runs the real compiler.

    With ``barrier=k`` each compilation first waits (up to 20 s) until k compilations have
    started, so k processes are certainly compiling at the same time.
    """
    log = tmp_path / "cc.log"
    wrapper = tmp_path / "cc-wrapper"
    wait = ""
    if barrier:
        marks = shlex.quote(str(tmp_path / "started"))
        wait = textwrap.dedent(f"""\
            mkdir -p {marks}; : > {marks}/$$
            i=0
            while [ "$(ls {marks} | wc -l)" -lt {barrier} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
            """)
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case " $* " in
          *" -shared "*)
            echo "$*" >> {shlex.quote(str(log))}
        """) + textwrap.indent(wait, "    ") + textwrap.dedent(f"""\
            ;;
        esac
        exec {shlex.quote(REAL_CC)} "$@"
        """))
    wrapper.chmod(0o755)
    return wrapper, log


def compilations(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache dir, the logging compiler, and empty in-process tables (all restored afterwards)."""
    wrapper, log = make_wrapper(tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYSTEC_REF_CACHE", str(cache))
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.delenv("CFLAGS", raising=False)
    monkeypatch.setattr(build, "_loaded", {})
    monkeypatch.setattr(build, "_versions", {})
    return cache, log


def subprocess_env(cache: Path, cc: Path) -> dict[str, str]:
    env = dict(os.environ, SYSTEC_REF_CACHE=str(cache), CC=str(cc))
    env.pop("CFLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(helpers.ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def ssymv_check(k: systec_ref.Kernel, fn: CFunction) -> None:
    inputs = systec_ref.random_inputs(k, {"n": 6}, 3)
    arrays, dims = k.bind(inputs)
    assert systec_ref.agree(fn(arrays, dims)["y"], k.definition(inputs).value, "float64")


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.suffix == ".so")


# -- hits ---------------------------------------------------------------------------

def test_cache_hit_does_not_recompile(fresh):
    cache, log = fresh
    k = systec_ref.load(helpers.example("ssymv"))
    f1 = CFunction(k.final, k.stages[-1].name)
    assert len(compilations(log)) == 1
    ssymv_check(k, f1)
    build._loaded.clear()  # as a new process would: only the disk cache is left
    f2 = CFunction(k.final, k.stages[-1].name)
    assert len(compilations(log)) == 1, "a disk-cache hit recompiled"
    ssymv_check(k, f2)
    assert len(entries(cache)) == 1
    # a different source (another stage) is a miss
    CFunction(k.baseline[-1].program, "baseline")
    assert len(compilations(log)) == 2


def test_cache_hit_in_a_new_process(fresh):
    cache, log = fresh
    script = textwrap.dedent(f"""\
        import systec_ref
        k = systec_ref.load({str(helpers.example("ssymv"))!r})
        inputs = systec_ref.random_inputs(k, {{"n": 5}}, 0)
        assert systec_ref.agree(k.run(backend="c", **inputs), k.definition(inputs).value, "float64")
        print("ok")
        """)
    env = subprocess_env(cache, Path(os.environ["CC"]))
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert len(compilations(log)) == 1, compilations(log)


def test_flags_are_part_of_the_key(fresh, monkeypatch):
    _, log = fresh
    k = systec_ref.load(helpers.example("ssymv"))
    CFunction(k.final, "final")
    monkeypatch.setenv("CFLAGS", "-O1")
    build._loaded.clear()
    f = CFunction(k.final, "final")
    assert len(compilations(log)) == 2
    assert " -O1 " in f" {compilations(log)[-1]} "
    ssymv_check(k, f)


def test_in_process_cache_returns_the_same_objects(fresh):
    _, log = fresh
    k = systec_ref.load(helpers.example("ssymv"))
    f = k.c_function()
    assert k.c_function() is f
    assert k.c_function("baseline") is k.c_function("baseline")
    assert k.c_function("baseline") is not f
    assert build.load(f.source, k.final.name) is build.load(f.source, k.final.name)
    # another Kernel of the same file: its own CFunction, but the library is loaded once
    k2 = systec_ref.load(helpers.example("ssymv"))
    assert build.load(k2.c_function().source, k.final.name) is build.load(f.source, k.final.name)
    assert len(compilations(log)) == 2  # final and baseline, once each
    ssymv_check(k, f)


def test_cache_dir_is_created_private(fresh):
    cache, _ = fresh
    assert not cache.exists()
    k = systec_ref.load(helpers.example("ssymv"))
    k.c_function()
    assert cache.is_dir()
    assert stat.S_IMODE(cache.stat().st_mode) & 0o077 == 0


# -- concurrency ------------------------------------------------------------------------

def test_two_processes_compiling_the_same_kernel(tmp_path):
    """Both compile at once (the wrapper holds each until both have started); both succeed;
    one valid entry per source is left, and no temporary files."""
    wrapper, log = make_wrapper(tmp_path, barrier=2)
    cache = tmp_path / "cache"
    cache.mkdir()
    script = textwrap.dedent(f"""\
        import systec_ref
        k = systec_ref.load({str(helpers.example("mttkrp3"))!r})
        inputs = systec_ref.random_inputs(k, {{"n": 4, "r": 3}}, 0)
        want = k.definition(inputs).value
        assert systec_ref.agree(k.run(backend="c", **inputs), want, "float64")
        print("ok")
        """)
    env = subprocess_env(cache, wrapper)
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and out.strip() == "ok", err
    assert len(compilations(log)) == 2, "the two processes did not both compile"
    sos = entries(cache)
    assert len(sos) == 1, sos
    so = sos[0]
    assert build._valid(so, so.with_suffix(".sha256"))
    assert so.with_suffix(".c").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".build-") or p.name.endswith("-failed.c")]


# -- corruption ---------------------------------------------------------------------------

def _truncate(so: Path, sums: Path) -> None:
    data = so.read_bytes()
    so.write_bytes(data[: len(data) // 2])


def _flip_a_byte(so: Path, sums: Path) -> None:
    data = bytearray(so.read_bytes())
    data[len(data) // 2] ^= 0xFF
    so.write_bytes(bytes(data))


def _empty(so: Path, sums: Path) -> None:
    so.write_bytes(b"")


def _wrong_checksum(so: Path, sums: Path) -> None:
    sums.write_text("0" * 64 + "\n")


def _no_checksum(so: Path, sums: Path) -> None:
    sums.unlink()


def _garbage_with_matching_checksum(so: Path, sums: Path) -> None:
    """Not an object file at all, yet its checksum matches: loading fails, and it is rebuilt once."""
    so.write_bytes(b"this is not a shared object\n" * 10)
    sums.write_text(build._digest(so) + "\n")


@pytest.mark.parametrize("damage", [_truncate, _flip_a_byte, _empty, _wrong_checksum, _no_checksum,
                                    _garbage_with_matching_checksum], ids=lambda f: f.__name__.strip("_"))
def test_corrupted_entry_is_rebuilt_not_loaded(fresh, damage):
    cache, log = fresh
    k = systec_ref.load(helpers.example("ssymv"))
    source_stage = k.stages[-1].name
    source = emit_c(k.final, source_stage)
    so = build.build(source, k.final.name)  # on disk, never loaded by this process
    sums = so.with_suffix(".sha256")
    assert len(compilations(log)) == 1 and build._valid(so, sums)
    damage(so, sums)
    fn = CFunction(k.final, source_stage)
    assert fn.source == source
    assert len(compilations(log)) == 2, "the damaged entry was not rebuilt"
    assert build._valid(so, sums)
    ssymv_check(k, fn)
    assert entries(cache) == [so]


def test_compile_failure_leaves_no_entry(fresh, monkeypatch):
    cache, log = fresh
    monkeypatch.setenv("CFLAGS", "-Drestrict=garbage")
    k = systec_ref.load(helpers.example("ssymv"))
    with pytest.raises(systec_ref.ToolError):
        k.c_function()
    assert entries(cache) == []
    assert not [p for p in cache.iterdir() if p.name.startswith(".build-")]
    # the same kernel with working flags then compiles normally
    monkeypatch.delenv("CFLAGS")
    k2 = systec_ref.load(helpers.example("ssymv"))
    ssymv_check(k2, k2.c_function())
    assert len(entries(cache)) == 1


def test_a_cached_object_gives_bitwise_identical_results(fresh):
    """A rerun from the disk cache (in-process table cleared, a new Kernel) is the same code: same bits."""
    _, log = fresh
    k = systec_ref.load(helpers.example("mttkrp3"))
    inputs = systec_ref.random_inputs(k, {"n": 5, "r": 2}, 7)
    a = k.run(backend="c", **inputs)
    build._loaded.clear()
    k2 = systec_ref.load(helpers.example("mttkrp3"))
    b = k2.run(backend="c", **inputs)
    assert np.array_equal(a, b)
    assert len(compilations(log)) == 1
