"""The compiled-kernel cache.

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
from systec_ref.emit import cache as kernel_cache
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
    monkeypatch.setattr(kernel_cache, "_fallback_dir", None)  # each test: its own fallback and its own warning
    monkeypatch.setattr(kernel_cache, "_warned", False)
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

@pytest.mark.parametrize("procs", [2, pytest.param(8, marks=pytest.mark.slow)])
def test_processes_compiling_the_same_kernel(tmp_path, procs):
    """All compile at once (the wrapper holds each until all have started), into a cache directory
    that does not exist yet; all succeed; one valid entry (object, checksum, source) is left, private,
    and no temporary files."""
    wrapper, log = make_wrapper(tmp_path, barrier=procs)
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""\
        import systec_ref
        k = systec_ref.load({str(helpers.example("mttkrp3"))!r})
        inputs = systec_ref.random_inputs(k, {{"n": 4, "r": 3}}, 0)
        want = k.definition(inputs).value
        assert systec_ref.agree(k.run(backend="c", **inputs), want, "float64")
        print("ok")
        """)
    env = subprocess_env(cache, wrapper)
    ps = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True) for _ in range(procs)]
    results = [p.communicate(timeout=300) for p in ps]
    for p, (out, err) in zip(ps, results):
        assert p.returncode == 0 and out.strip() == "ok", err
    assert len(compilations(log)) == procs, f"{len(compilations(log))} compilations by {procs} processes"
    sos = entries(cache)
    assert len(sos) == 1, sos
    so = sos[0]
    assert build._valid(so, so.with_suffix(".sha256"))
    assert so.with_suffix(".c").is_file()
    assert sorted(p.name for p in cache.iterdir()) == sorted(so.with_suffix(s).name for s in (".c", ".sha256", ".so"))
    for f in cache.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f
    assert stat.S_IMODE(cache.stat().st_mode) & 0o077 == 0


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


def _compile_so(c_text: str, out: Path) -> None:
    src = out.with_suffix(".c")
    src.write_text(c_text)
    subprocess.run([REAL_CC, "-shared", "-fPIC", "-o", str(out), str(src)], check=True, capture_output=True)


def _trojan(so: Path, sums: Path) -> None:
    """A working shared object that defines the kernel's function and, when loaded, leaves a mark: it
    must never be loaded (its checksum is not the recorded one)."""
    mark = so.parent.parent / "trojan-ran"
    _compile_so(textwrap.dedent(f"""\
        #include <stdio.h>
        __attribute__((constructor)) static void mark(void) {{ FILE *f = fopen("{mark}", "w"); if (f) fclose(f); }}
        int systec_ssymv(void) {{ return 0; }}
        """), so.parent.parent / "trojan.so")
    os.replace(so.parent.parent / "trojan.so", so)


def _another_kernel(so: Path, sums: Path) -> None:
    """A valid object of another kernel with the same function name, the checksum left as it was."""
    _compile_so("int systec_ssymv(long n, const double *A, const double *x, double *y) { return 0; }\n",
                so.parent.parent / "other.so")
    os.replace(so.parent.parent / "other.so", so)


@pytest.mark.parametrize("damage", [_truncate, _flip_a_byte, _empty, _wrong_checksum, _no_checksum,
                                    _garbage_with_matching_checksum, _trojan, _another_kernel],
                         ids=lambda f: f.__name__.strip("_"))
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
    assert not (cache.parent / "trojan-ran").exists(), "a tampered object was loaded"
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


# -- safety: a cache that cannot be turned against its user --------------------------------------

def _other_uid(monkeypatch, path: Path) -> None:
    """Make ``path`` belong to someone else: really as root, else as ``os.stat`` reports it."""
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534, follow_symlinks=False)
        return
    real_stat, other = os.stat, os.geteuid() + 1

    def stat_as_another_owner(p, *args, **kw):
        st = real_stat(p, *args, **kw)
        if os.fspath(p) != str(path):
            return st
        fields = list(st[:10])
        fields[4] = other  # st_uid
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat_as_another_owner)


def _plant_trojan(cache_dir: Path, k: systec_ref.Kernel) -> Path:
    """Put where ssymv's entry would be a working object that leaves a mark when loaded, with a
    matching checksum: only the directory's unsafety stands between it and this process."""
    source = emit_c(k.final, k.stages[-1].name)
    stem = f"{k.final.name}-{build.cache_key(source, build.toolchain())[:32]}"
    so = cache_dir / f"{stem}.so"
    mark = cache_dir.parent / "trojan-ran"
    _compile_so(textwrap.dedent(f"""\
        #include <stdio.h>
        __attribute__((constructor)) static void mark(void) {{ FILE *f = fopen("{mark}", "w"); if (f) fclose(f); }}
        int systec_ssymv(void) {{ return 0; }}
        """), cache_dir.parent / "trojan.so")
    os.replace(cache_dir.parent / "trojan.so", so)
    so.chmod(0o600)
    so.with_suffix(".sha256").write_text(build._digest(so) + "\n")
    so.with_suffix(".sha256").chmod(0o600)
    return mark


def _falls_back(k: systec_ref.Kernel, log: Path, match: str) -> str:
    """Compile ``k``: the unsafe cache is not used, a private temporary one is, with one warning."""
    with pytest.warns(kernel_cache.CacheWarning, match=match) as caught:
        fn = k.c_function()
    assert len(caught) == 1
    ssymv_check(k, fn)
    assert len(compilations(log)) == 1
    assert "systec_ref-cache-" in compilations(log)[0], "not compiled in the private temporary directory"
    return str(caught[0].message)


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777], ids=oct)
def test_a_cache_dir_others_can_write_is_not_used(fresh, mode):
    cache_dir, log = fresh
    cache_dir.mkdir()
    cache_dir.chmod(mode)
    k = systec_ref.load(helpers.example("ssymv"))
    mark = _plant_trojan(cache_dir, k)
    before = sorted(cache_dir.iterdir())
    message = _falls_back(k, log, "writable by")
    assert str(cache_dir) in message and f"chmod go-w {cache_dir}" in message
    assert not mark.exists(), "code was loaded from a cache others can write"
    assert sorted(cache_dir.iterdir()) == before, "the unsafe cache was written to"
    for f in before:
        f.unlink()
    cache_dir.chmod(0o755)  # readable by others is fine; writable is not
    build._loaded.clear()
    k2 = systec_ref.load(helpers.example("ssymv"))
    ssymv_check(k2, k2.c_function())
    assert len(entries(cache_dir)) == 1


def test_a_cache_dir_of_another_user_is_not_used(fresh, monkeypatch):
    cache_dir, log = fresh
    cache_dir.mkdir(mode=0o700)
    k = systec_ref.load(helpers.example("ssymv"))
    mark = _plant_trojan(cache_dir, k)
    _other_uid(monkeypatch, cache_dir)
    message = _falls_back(k, log, r"belongs to uid \d+, not to you")
    assert str(cache_dir) in message
    assert not mark.exists(), "code was loaded from another user's cache"


def test_a_symlinked_cache_dir_is_judged_by_its_target(fresh, tmp_path):
    cache_dir, log = fresh
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o777)
    target.chmod(0o777)
    cache_dir.symlink_to(target)
    _falls_back(systec_ref.load(helpers.example("ssymv")), log, "writable by its group and other users")
    assert list(target.iterdir()) == []


def test_a_parent_others_can_write_without_sticky_bit_is_not_used(fresh, tmp_path, monkeypatch):
    _, log = fresh
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("SYSTEC_REF_CACHE", str(shared / "cache"))
    k = systec_ref.load(helpers.example("ssymv"))
    message = _falls_back(k, log, "without the sticky bit")
    assert str(shared) in message
    assert not [p for p in (shared / "cache").iterdir() if p.suffix == ".so"]
    shared.chmod(0o1777)  # like /tmp: others cannot rename or remove what is not theirs
    build._loaded.clear()
    k2 = systec_ref.load(helpers.example("ssymv"))
    ssymv_check(k2, k2.c_function())
    assert len(entries(shared / "cache")) == 1


def _group_writable(p: Path, monkeypatch) -> None:
    p.chmod(0o660)


def _world_writable(p: Path, monkeypatch) -> None:
    p.chmod(0o606)


def _owned_by_another_user(p: Path, monkeypatch) -> None:
    _other_uid(monkeypatch, p)


def _a_symlink(p: Path, monkeypatch) -> None:
    real = p.parent.parent / ("real" + p.suffix)
    os.replace(p, real)
    p.symlink_to(real)


@pytest.mark.parametrize("which", [".so", ".sha256"])
@pytest.mark.parametrize("how", [_group_writable, _world_writable, _owned_by_another_user, _a_symlink],
                         ids=lambda f: f.__name__.strip("_"))
def test_an_entry_others_could_have_written_is_refused(fresh, monkeypatch, which, how):
    cache, log = fresh
    k = systec_ref.load(helpers.example("ssymv"))
    source = emit_c(k.final, k.stages[-1].name)
    so = build.build(source, k.final.name)
    entry = so.with_suffix(which)
    how(entry, monkeypatch)
    with pytest.raises(systec_ref.ToolError, match="refusing to use the compiled-kernel cache") as e:
        CFunction(k.final, k.stages[-1].name)
    assert str(entry) in str(e.value) and "rm " in str(e.value)
    assert len(compilations(log)) == 1


def test_entries_are_private_whatever_the_umask(fresh):
    cache, _ = fresh
    old = os.umask(0)
    try:
        k = systec_ref.load(helpers.example("ssymv"))
        ssymv_check(k, k.c_function())
    finally:
        os.umask(old)
    files = list(cache.iterdir())
    assert sorted(f.suffix for f in files) == [".c", ".sha256", ".so"]
    for f in [cache, *files]:
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, (f, oct(f.stat().st_mode))


@pytest.mark.parametrize("name", ["../escape", "a/b", "x y", "", "k;rm", "9lives", "k" * 65, "\u00e9t\u00e9"])
def test_a_kernel_name_that_is_not_an_identifier_never_reaches_the_disk(fresh, name):
    cache, log = fresh
    with pytest.raises(systec_ref.ToolError, match="not a C identifier"):
        build.build("int f(void) { return 0; }\n", name)
    assert compilations(log) == [] and not cache.exists()


@pytest.mark.parametrize("field", ["kernel", "tensor", "dimension"])
def test_names_reach_c_only_as_validated_identifiers(fresh, field):
    """A Program built by hand (not by the parser, which checks names) with a name that is not a C
    identifier, or is a C keyword, is refused before any C is written."""
    import dataclasses

    _, log = fresh
    p = systec_ref.load(helpers.example("ssymv")).final
    for bad in ["A); system(\"id\"", "int", "x-y"]:
        if field == "kernel":
            q = dataclasses.replace(p, name=bad)
        elif field == "tensor":
            q = dataclasses.replace(p, tensors=(dataclasses.replace(p.tensors[0], name=bad), *p.tensors[1:]))
        else:
            t = p.tensors[0]
            q = dataclasses.replace(p, tensors=(dataclasses.replace(t, dims=(bad,) * len(t.dims)), *p.tensors[1:]))
        with pytest.raises(systec_ref.ToolError, match=f"{field} name .* is not a valid C identifier"):
            CFunction(q, "hand-made")
    assert compilations(log) == []
