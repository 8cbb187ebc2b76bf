"""The compiled-kernel cache as a whole: where it is, what happens when it cannot be used, what its
key holds, how big it may grow, and the ``cache`` command.

Tests that depend on HOME or on the process's one warning run ``python -m systec_ref`` in a
subprocess; the others reset the in-process state (loaded libraries, the fallback directory, the
warning flag) and build tiny C sources, which compile in a few tens of milliseconds.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import helpers
import pytest

import systec_ref
from systec_ref.cli import main as cli_main
from systec_ref.emit import build, cache
from systec_ref.emit.cache import CacheWarning

pytestmark = pytest.mark.usefixtures("c_compiler")

WARNING = "cannot use the compiled-kernel cache"


def tiny(n: int) -> str:
    """A C source of its own (so its own cache entry) that compiles in a blink."""
    return f"int systec_tiny(void) {{ return {n}; }}\n"


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A cache directory of this test's own and no in-process state (restored afterwards)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("SYSTEC_REF_CACHE", str(d))
    monkeypatch.delenv("CFLAGS", raising=False)
    monkeypatch.delenv(cache.MAX_BYTES_VAR, raising=False)
    monkeypatch.setattr(build, "_loaded", {})
    monkeypatch.setattr(cache, "_fallback_dir", None)
    monkeypatch.setattr(cache, "_warned", False)
    return d


def cli(args: list[str], env: dict[str, str], cwd: Path = helpers.ROOT) -> subprocess.CompletedProcess:
    env = dict(env, PYTHONPATH=os.pathsep.join([str(helpers.ROOT), *filter(None, [env.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, "-m", "systec_ref", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def cache_env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SYSTEC_REF_CACHE", "XDG_CACHE_HOME", "CFLAGS",
                                                            cache.MAX_BYTES_VAR)}
    for k, v in changes.items():
        if v is not None:
            env[k] = v
    return env


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if WARNING in line]


# -- a directory that cannot be used: a private temporary one instead, and one warning --------------

def test_home_in_proc_falls_back_warns_once_and_succeeds(tmp_path):
    """No cache variable, HOME=/proc: ~/.cache cannot be created.  Two kernels are compiled (baseline
    and final); one one-line warning; exit 0; the temporary directory is gone at exit."""
    r = cli(["run", str(helpers.example("ssymv")), "--backend", "c"], cache_env(HOME="/proc", TMPDIR=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    lines = warning_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    assert "/proc/.cache/systec_ref" in lines[0] and "SYSTEC_REF_CACHE" in lines[0], lines[0]
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert "agree: every program matches" in r.stdout
    assert list(tmp_path.iterdir()) == [], "the temporary cache was left behind"


def _unwritable_dirs(tmp_path: Path) -> list[tuple[str, Path]]:
    dirs = [("proc", Path("/proc/self"))]  # read-only even for root
    if os.geteuid() != 0:  # root writes into a 0500 directory all the same
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o500)
        dirs.append(("mode 500", ro))
    return dirs


@pytest.mark.parametrize("where", ["read-only", "parent is a file", "XDG under /proc", "HOME unknown"])
def test_an_unusable_cache_dir_falls_back_to_a_private_temporary_dir(fresh, tmp_path, monkeypatch, where):
    if where == "read-only":
        cases = _unwritable_dirs(tmp_path)
    elif where == "parent is a file":
        (tmp_path / "a-file").write_text("")
        cases = [(where, tmp_path / "a-file" / "cache")]
    elif where == "XDG under /proc":
        monkeypatch.delenv("SYSTEC_REF_CACHE")
        monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-dir")
        cases = [(where, Path("/proc/no-such-dir/systec_ref"))]
    else:
        monkeypatch.delenv("SYSTEC_REF_CACHE")
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        monkeypatch.setattr(os.path, "expanduser", lambda p: p)  # what it does when no home can be found
        cases = [(where, Path("~/.cache/systec_ref"))]
    for label, d in cases:
        if where in ("read-only", "parent is a file"):
            monkeypatch.setenv("SYSTEC_REF_CACHE", str(d))
        monkeypatch.setattr(cache, "_fallback_dir", None)
        monkeypatch.setattr(cache, "_warned", False)
        with pytest.warns(CacheWarning) as caught:
            so = build.build(tiny(1), "tiny")
            again = build.build(tiny(2), "tiny")  # a second build: the same directory, no second warning
        assert len(caught) == 1, (label, [str(w.message) for w in caught])
        message = str(caught[0].message)
        assert str(d) in message and "SYSTEC_REF_CACHE" in message and "\n" not in message, message
        tmp = so.parent
        assert tmp != d and again.parent == tmp and tmp.name.startswith("systec_ref-cache-")
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o700
        assert build._valid(so, so.with_suffix(".sha256"))


def test_the_warning_can_be_filtered(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("SYSTEC_REF_CACHE", "/proc/self")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=CacheWarning)
        assert build.build(tiny(3), "tiny").is_file()
    assert issubclass(CacheWarning, UserWarning)


def test_read_only_cache_dir_in_a_process(tmp_path):
    """The command line too: exit 0, one warning, the result checked."""
    r = cli(["run", str(helpers.example("ssymv")), "--backend", "c"],
            cache_env(SYSTEC_REF_CACHE="/proc/self", TMPDIR=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    lines = warning_lines(r.stderr)
    assert len(lines) == 1 and "/proc/self" in lines[0] and "not writable" in lines[0], r.stderr
    assert lines[0].startswith("warning: "), lines[0]  # one line, no source line under it
    assert list(tmp_path.iterdir()) == []


def test_no_temporary_directory_either_is_a_tool_error(fresh, monkeypatch):
    monkeypatch.setenv("SYSTEC_REF_CACHE", "/proc/self")
    monkeypatch.setattr(cache.tempfile, "tempdir", "/proc/self")
    with pytest.raises(systec_ref.ToolError, match="no temporary directory could be made"):
        build.build(tiny(4), "tiny")


# -- the key: the CPU, when the code is built for "this CPU" -----------------------------------------

def test_native_flags_put_the_cpu_in_the_key(fresh, monkeypatch):
    cpu = {"name": "cpu A"}
    monkeypatch.setattr(build, "cpu_description", lambda: cpu["name"])
    monkeypatch.setattr(build, "_targets", {})
    monkeypatch.setenv("CFLAGS", "-O2 -march=native")
    a = build.toolchain()
    assert "cpu A" in a.target
    cpu["name"] = "cpu B"
    assert build.toolchain().target == a.target, "the CPU is probed once per process and compiler"
    monkeypatch.setattr(build, "_targets", {})
    b = build.toolchain()
    assert "cpu B" in b.target
    assert build.cache_key("int x;", a) != build.cache_key("int x;", b)
    # without a native flag the CPU plays no part
    monkeypatch.setenv("CFLAGS", "-O2")
    plain = build.toolchain()
    assert plain.target == ""
    cpu["name"] = "cpu A"
    monkeypatch.setattr(build, "_targets", {})
    assert build.cache_key("int x;", build.toolchain()) == build.cache_key("int x;", plain)
    assert build.cache_key("int x;", plain) != build.cache_key("int x;", a)


@pytest.mark.parametrize("flag", ["-mtune=native", "-mcpu=native"])
def test_other_native_flags_key_on_the_cpu_too(fresh, monkeypatch, flag):
    monkeypatch.setattr(build, "cpu_description", lambda: "cpu C")
    monkeypatch.setattr(build, "_targets", {})
    monkeypatch.setattr(build, "_compiler_target", lambda parts, native: "")  # -mcpu=native is not x86 GCC's
    monkeypatch.setenv("CFLAGS", f"-O2 {flag}")
    assert "cpu C" in build.toolchain().target


def test_the_compiler_says_what_native_means(fresh, monkeypatch):
    monkeypatch.setattr(build, "_targets", {})
    monkeypatch.setenv("CFLAGS", "-O2 -march=native")
    tc = build.toolchain()
    assert build.cpu_description() in tc.target
    if "gcc" in tc.version.lower() or "free software foundation" in tc.version.lower():
        assert "-march=" in tc.target and "-march=native" not in tc.target, tc.target


def test_cpu_description_reads_cpuinfo_and_survives_without_it(tmp_path):
    def cpuinfo(flags: str) -> str:
        p = tmp_path / f"cpuinfo-{len(flags)}"
        block = f"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Some CPU 9000\nflags\t\t: {flags}\n"
        p.write_text(block + "\n" + block.replace(": 0", ": 1"))
        return str(p)

    old = build.cpu_description(cpuinfo("fpu sse2 avx2"))
    new = build.cpu_description(cpuinfo("fpu sse2 avx2 avx512f"))
    assert "Some CPU 9000" in old and "Some CPU 9000" in new
    assert old != new, "the instruction-set flags are part of the description"
    missing = build.cpu_description(str(tmp_path / "no-cpuinfo"))
    assert missing.strip() and missing != old


# -- size bound and least-recently-used eviction ----------------------------------------------------

def entry_files(d: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in sorted(d.iterdir()):
        m = cache.ENTRY.match(p.name)
        if m:
            out.setdefault(m.group("stem"), []).append(p.suffix)
    return out


def age(so: Path, seconds: float) -> None:
    """Make an entry look last used ``seconds`` ago."""
    t = time.time() - seconds
    for suffix in (".so", ".sha256", ".c"):
        os.utime(so.with_suffix(suffix), (t, t))


def entry_size(so: Path) -> int:
    return sum(so.with_suffix(s).stat().st_size for s in (".so", ".sha256", ".c"))


def test_a_hit_refreshes_the_entry(fresh):
    so = build.build(tiny(10), "tiny")
    age(so, 1000)
    before = so.with_suffix(".sha256").stat().st_mtime
    assert build.build(tiny(10), "tiny") == so
    assert so.with_suffix(".sha256").stat().st_mtime > before + 500


def test_lru_eviction_keeps_the_most_recently_used(fresh, monkeypatch):
    d = fresh
    a = build.build(tiny(20), "tiny")
    b = build.build(tiny(21), "tiny")
    age(a, 300)
    age(b, 200)
    assert build.build(tiny(20), "tiny") == a  # a hit: a is now the most recently used
    (d / "notes.txt").write_text("not ours")
    (d / "tiny-notakey.so").write_text("not ours either")
    # room for two entries: building a third evicts the least recently used (b), whole
    monkeypatch.setenv(cache.MAX_BYTES_VAR, str(entry_size(a) + entry_size(b) + 200))
    c = build.build(tiny(22), "tiny")
    assert set(entry_files(d)) == {a.stem, c.stem}
    assert sorted(entry_files(d)[a.stem]) == [".c", ".sha256", ".so"]
    assert (d / "notes.txt").exists() and (d / "tiny-notakey.so").exists()
    # a bound of 0 keeps only the entry just built
    monkeypatch.setenv(cache.MAX_BYTES_VAR, "0")
    e = build.build(tiny(23), "tiny")
    assert set(entry_files(d)) == {e.stem}
    assert build._valid(e, e.with_suffix(".sha256"))


def test_eviction_is_untroubled_by_files_vanishing(tmp_path, monkeypatch):
    gone = cache.Entry("tiny-" + "0" * 32, (tmp_path / f"tiny-{'0' * 32}.so",), 10**6, 0.0)
    monkeypatch.setattr(cache, "entries", lambda d: [gone])
    assert cache.evict(tmp_path, keep="other", bound=0) == []


@pytest.mark.parametrize("text, value", [("", cache.DEFAULT_MAX_BYTES), ("1000", 1000), ("64K", 64 * 1024),
                                         ("256M", 256 * 2**20), ("2g", 2 * 2**30), ("10MiB", 10 * 2**20)])
def test_the_size_bound_is_read(monkeypatch, text, value):
    monkeypatch.setenv(cache.MAX_BYTES_VAR, text)
    assert cache.max_bytes() == value


@pytest.mark.parametrize("text", ["abc", "-5", "1.5M", "12 parsecs"])
def test_a_bad_size_bound_is_a_one_line_error_naming_the_variable(fresh, monkeypatch, text):
    monkeypatch.setenv(cache.MAX_BYTES_VAR, text)
    with pytest.raises(systec_ref.ToolError, match=cache.MAX_BYTES_VAR) as e:
        build.build(tiny(30), "tiny")
    assert "\n" not in str(e.value)
    assert not fresh.exists() or entry_files(fresh) == {}, "the bound is checked before compiling"


def main(args: list[str], capsys) -> tuple[int, str, str]:
    """The command line, in this process (the environment comes from monkeypatch)."""
    code = cli_main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bad_size_bound_on_the_command_line(fresh, monkeypatch, capsys):
    monkeypatch.setenv(cache.MAX_BYTES_VAR, "lots")
    code, _, err = main(["cache", "info"], capsys)
    assert code == 2 and cache.MAX_BYTES_VAR in err and len(err.strip().splitlines()) == 1


# -- the 'cache' command ------------------------------------------------------------------------

def test_cache_info_and_clear(fresh, monkeypatch, capsys):
    d = fresh
    sos = [build.build(tiny(40 + i), "tiny") for i in range(2)]
    # a name that is not ours: another name, a key one digit short, a key that is not hexadecimal
    foreign = [d / "notes.txt", d / f"tiny-{'f' * 31}.so", d / f"tiny-{'g' * 32}.sha256"]
    for f in foreign:
        f.write_text("someone else's")
    total = sum(entry_size(so) for so in sos)
    monkeypatch.setenv(cache.MAX_BYTES_VAR, "10M")
    code, out, err = main(["cache", "info"], capsys)
    assert code == 0, err
    assert f"directory: {d}\n" in out
    assert "entries: 2\n" in out
    assert f"total bytes: {total} " in out
    assert f"size bound: {10 * 2**20} bytes" in out
    code, out, err = main(["cache", "clear"], capsys)
    assert code == 0, err
    removed = {line.removeprefix("removed ") for line in out.splitlines() if line.startswith(f"removed {d}")}
    assert removed == {str(so.with_suffix(s)) for so in sos for s in (".so", ".sha256", ".c")}
    assert "removed 6 files" in out
    assert sorted(d.iterdir()) == sorted(foreign), "clear removed something that was not ours"
    assert "entries: 0\n" in main(["cache", "info"], capsys)[1]


def test_cache_clear_of_a_missing_dir_and_of_a_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYSTEC_REF_CACHE", str(tmp_path / "none"))
    code, out, err = main(["cache", "clear"], capsys)
    assert code == 0 and "removed 0 files" in out, err
    assert not (tmp_path / "none").exists()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SYSTEC_REF_CACHE", str(tmp_path / "file"))
    code, out, err = main(["cache", "clear"], capsys)
    assert code == 2 and "not a directory" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:  # argparse: usage and exit 2
        main(["cache", "frobnicate"], capsys)
    assert e.value.code == 2


def test_cache_info_says_when_the_directory_cannot_be_used(monkeypatch, capsys):
    monkeypatch.setenv("SYSTEC_REF_CACHE", "/proc/self")
    code, out, err = main(["cache", "info"], capsys)
    assert code == 0, err
    assert "note: this directory cannot be used: it is not writable" in out
