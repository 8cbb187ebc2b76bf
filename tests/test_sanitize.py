"""Sanitizer mode: kernels compiled with ``-fsanitize=address,undefined``.

``SYSTEC_REF_SANITIZE=1`` adds :data:`systec_ref.emit.build.SANITIZE_FLAGS`.  Python is not
instrumented, so kernels run in a subprocess started with the ASan runtime preloaded; there
``tests/sanitize_driver.py`` runs every example (dense and sparse variants, optimized and
baseline C) on edge-case inputs against the definition.  The first tests check the harness
itself: an out-of-bounds write and a signed overflow in otherwise generated C must abort
the subprocess with the sanitizer's report, so a harness that silently stopped sanitizing
would fail here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import helpers
import pytest

from systec_ref.emit import build
from systec_ref.errors import ToolError

pytestmark = pytest.mark.usefixtures("c_compiler")

DRIVER = helpers.ROOT / "tests" / "sanitize_driver.py"


@pytest.fixture(scope="module")
def sanitize_env() -> dict[str, str]:
    env = dict(os.environ)
    preload = build.sanitizer_preload()  # fails (does not skip) without the runtime: CI must run this
    env["LD_PRELOAD"] = " ".join(filter(None, [preload, env.get("LD_PRELOAD")]))
    env["SYSTEC_REF_SANITIZE"] = "1"
    env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1"  # Python's own allocations are not ours to judge
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env["PYTHONPATH"] = os.pathsep.join([str(helpers.ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)


# -- the mode itself ----------------------------------------------------------------------

def test_sanitize_flags_are_added_and_keyed(monkeypatch):
    monkeypatch.delenv("CFLAGS", raising=False)
    monkeypatch.delenv("SYSTEC_REF_SANITIZE", raising=False)
    plain = build.toolchain()
    monkeypatch.setenv("SYSTEC_REF_SANITIZE", "1")
    sanitized = build.toolchain()
    assert not set(build.SANITIZE_FLAGS) <= set(plain.cflags)
    assert sanitized.cflags[-len(build.SANITIZE_FLAGS):] == build.SANITIZE_FLAGS
    assert build.cache_key("int x;", plain) != build.cache_key("int x;", sanitized)
    monkeypatch.setenv("SYSTEC_REF_SANITIZE", "0")
    assert build.toolchain().cflags == plain.cflags


def test_sanitize_mode_without_the_runtime_says_how_to_run(monkeypatch, tmp_path):
    """This pytest process has no ASan runtime: loading a sanitized kernel would fail in dlopen."""
    monkeypatch.setenv("SYSTEC_REF_SANITIZE", "1")
    monkeypatch.setenv("SYSTEC_REF_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ToolError, match=r"LD_PRELOAD=\$\(cc -print-file-name=libasan.so\)"):
        build.load("int systec_nothing(void) { return 0; }\n", "nothing")


# -- the harness catches what it is for ------------------------------------------------------

PROBE = textwrap.dedent("""\
    import ctypes, sys
    import numpy as np
    import systec_ref
    from systec_ref.emit import build
    from systec_ref.emit.c import emit_c

    k = systec_ref.load({path!r})
    source = emit_c(k.final)
    assert {old!r} in source
    source = source.replace({old!r}, {new!r})
    lib = build.load(source, k.name)
    fn = getattr(lib, "systec_" + k.name)
    args = [np.ones(shape, dtype={dtype}) for shape in [(5, 5), (5,), (5,)]]  # A[n, n], x[n], y[n]
    fn.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * len(args)
    n = 5
    fn(n, *[a.ctypes.data for a in args])
    print("returned")
    """)


def aborts_when_broken(r: subprocess.CompletedProcess, broken: bool, report: str) -> None:
    """The probe aborted with the sanitizer's ``report`` if its C was broken, else returned cleanly."""
    if broken:
        assert r.returncode != 0 and "returned" not in r.stdout, r.stdout
        assert report in r.stderr, r.stderr[-3000:]
    else:
        assert r.returncode == 0 and r.stdout.strip() == "returned", r.stderr[-3000:]


@pytest.mark.parametrize("broken", [False, True], ids=["intact", "broken"])
def test_an_out_of_bounds_write_aborts(sanitize_env, broken):
    """ssymv's output initialization made to run one element past the end of y."""
    old = "sx_i < (size_t)n;"
    script = PROBE.format(path=str(helpers.example("ssymv")), old=old, new=old.replace("<", "<=") if broken else old,
                          dtype="np.float64")
    aborts_when_broken(run(["-c", script], sanitize_env), broken, "AddressSanitizer: heap-buffer-overflow")


@pytest.mark.parametrize("broken", [False, True], ids=["intact", "broken"])
def test_a_signed_overflow_aborts(sanitize_env, broken):
    """widest (int64) with its max-plus step made to add INT64_MAX in signed arithmetic: undefined behaviour
    in C.  (The generated C adds in uint64_t, where wrapping is defined: the intact kernel must not abort.)"""
    old = "sx_v = (int64_t)((uint64_t)_r0 + (uint64_t)d[j]);"
    new = "sx_v = _r0 + INT64_MAX + d[j];" if broken else old
    script = PROBE.format(path=str(helpers.example("widest")), old=old, new=new,
                          dtype="np.int64")
    aborts_when_broken(run(["-c", script], sanitize_env), broken, "runtime error: signed integer overflow")


# -- every example under the sanitizers ----------------------------------------------------------

def _groups() -> list[tuple[str, list[str]]]:
    out = []
    for path in helpers.EXAMPLES:
        sparse = helpers.EXAMPLES_DIR / "sparse" / path.name
        out.append((path.stem, [str(path)] + ([str(sparse)] if sparse.exists() else [])))
    covered = {p.name for p in helpers.EXAMPLES}
    out += [(f"sparse-{p.stem}", [str(p)]) for p in sorted((helpers.EXAMPLES_DIR / "sparse").glob("*.ein"))
            if p.name not in covered]
    out.append(("extra", ["--extra"]))
    out.append(("compact-faces", ["--faces", "compact", *map(str, helpers.EXAMPLES)]))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("args", [a for _, a in _groups()], ids=[name for name, _ in _groups()])
def test_examples_under_sanitizers(sanitize_env, args):
    r = run([str(DRIVER), *args], sanitize_env)
    report = r.stdout + r.stderr[-6000:]
    assert r.returncode == 0, f"exit {r.returncode}\n{report}"
    lines = r.stdout.splitlines()
    assert lines and all(line.startswith("ok ") for line in lines), report
