"""Compile generated C into a shared object, with an on-disk and in-process cache.

* Compiler: ``$CC`` (default ``cc``); flags: ``$CFLAGS`` (default
  :data:`DEFAULT_CFLAGS`, chosen for speed: reductions may be reassociated so
  they vectorize, but no ``-ffast-math`` — NaN and infinity keep their
  meaning), plus the flags a shared object needs.
* Cache: the directory of :mod:`.cache` (``$SYSTEC_REF_CACHE``; one that
  cannot be used, or is not safe, is replaced by a private temporary one, with
  a warning), bounded in size with least-recently-used eviction.  An entry is
  keyed by a SHA-256 of the source, the compiler's version text, the flags and,
  when the flags target the CPU it runs on (``-march=native``), a description
  of that CPU; it is written to a temporary name and renamed into place
  (atomic, so two processes compiling the same kernel both succeed), and a
  sidecar records the SHA-256 of the shared object, checked before every
  load: a corrupted or truncated entry is rebuilt, never loaded.
* Entry safety: every entry that is loaded must be a regular file of the
  user's that nobody else can write; otherwise
  :class:`~systec_ref.errors.ToolError` names the path and the fix.  Entries
  are written ``0o700``/``0o600`` whatever the umask.  A kernel name becomes
  part of a file name only if it is a C identifier.
* Sanitizers: with ``SYSTEC_REF_SANITIZE=1`` every kernel is compiled with
  :data:`SANITIZE_FLAGS` as well (AddressSanitizer and UndefinedBehavior-
  Sanitizer; part of the cache key like every flag).  Python is not
  instrumented, so the process must start with the ASan runtime preloaded:
  ``LD_PRELOAD=$(cc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0``
  (see ``tests/sanitize_driver.py``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError
from . import cache
from .cache import CacheWarning, cache_dir, others_write

__all__ = ["DEFAULT_CFLAGS", "REQUIRED_FLAGS", "SANITIZE_FLAGS", "CacheWarning", "Toolchain", "build", "cache_dir",
           "cache_key", "cpu_description", "load", "sanitizer_preload", "sanitizing", "toolchain"]

#: fast, and NaN/inf-preserving: reductions may be reassociated (and so vectorized), as
#: every BLAS does; results stay within the 1e-12 tolerance of the interpreter.
DEFAULT_CFLAGS = "-O3 -march=native -fno-math-errno -fassociative-math -fno-signed-zeros -fno-trapping-math"
REQUIRED_FLAGS = ["-std=c99", "-fPIC", "-shared"]
#: added to the flags when ``SYSTEC_REF_SANITIZE`` is set (and not ``0``): any out-of-bounds
#: access, use of freed memory or undefined behaviour (signed overflow, bad shift, ...) aborts.
#: ``-O1`` (the last -O wins): the usual level for sanitizers, and GCC 12 at -O2/-O3 with
#: -fsanitize=signed-integer-overflow,bounds miscompiles the subscript sort of a mirrored output
#: (wrong results from correct C; its value-range pass, -ftree-vrp, is at fault)
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g",
                  "-O1")
#: what may name a cache entry (and a C function): a C identifier of at most 64 characters
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
#: a flag that makes the compiler generate code for the CPU it runs on
_NATIVE = re.compile(r"-m(?:arch|tune|cpu)=native\Z")

_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL] = {}
_versions: dict[str, str] = {}
#: the target of each (compiler, native flags): probed once per process
_targets: dict[tuple[str, tuple[str, ...]], str] = {}


@dataclass(frozen=True)
class Toolchain:
    cc: str
    cflags: tuple[str, ...]
    version: str
    #: the CPU the code is built for, when the flags say "this CPU" (-march=native); else empty
    target: str = ""

    def describe(self) -> str:
        return f"{self.cc} {' '.join(self.cflags)} ({self.version.splitlines()[0] if self.version else '?'})"


def sanitizing() -> bool:
    """Is sanitizer mode on (``SYSTEC_REF_SANITIZE`` set, and not to ``0``)?"""
    return os.environ.get("SYSTEC_REF_SANITIZE", "") not in ("", "0")


def sanitizer_preload(cc: str | None = None) -> str:
    """The ASan runtime to preload into an uninstrumented Python (``cc -print-file-name=libasan.so``)."""
    parts = shlex.split(cc or os.environ.get("CC", "cc")) or ["cc"]
    try:
        r = subprocess.run([*parts, "-print-file-name=libasan.so"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolError(f"C compiler '{' '.join(parts)}' does not run: {e}") from None
    path = r.stdout.strip()
    if r.returncode != 0 or not os.path.isabs(path) or not os.path.exists(path):
        raise ToolError("the compiler has no AddressSanitizer runtime (libasan.so): install it "
                        "(gcc ships it; e.g. 'apt-get install gcc') or turn SYSTEC_REF_SANITIZE off")
    return path


def _asan_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:  # no /proc: let dlopen decide
        return True


def toolchain() -> Toolchain:
    cc = os.environ.get("CC", "cc")
    flags = tuple(shlex.split(os.environ.get("CFLAGS", DEFAULT_CFLAGS)))
    if sanitizing():
        flags += SANITIZE_FLAGS
    parts = shlex.split(cc) or ["cc"]  # CC may carry arguments, e.g. 'ccache gcc'
    if shutil.which(parts[0]) is None:
        where = "does not exist or is not executable" if os.sep in parts[0] else "is not on PATH"
        raise ToolError(f"no C compiler: CC='{cc}' {where} (install gcc, e.g. 'apt-get install gcc', "
                        f"or set CC to a C compiler)")
    if cc not in _versions:
        try:
            r = subprocess.run([*parts, "--version"], capture_output=True, text=True, timeout=60)
            _versions[cc] = (r.stdout or r.stderr).strip()
        except (OSError, subprocess.SubprocessError) as e:
            raise ToolError(f"C compiler '{cc}' does not run: {e} (set CC to a working compiler)") from None
    native = tuple(f for f in flags if _NATIVE.match(f))
    if native and (cc, native) not in _targets:
        _targets[cc, native] = f"{_compiler_target(parts, native)}; {cpu_description()}"
    return Toolchain(cc, flags, _versions[cc], _targets[cc, native] if native else "")


# -- the target CPU ---------------------------------------------------------------------------
# Code built with -march=native runs only on CPUs with the instructions of the one that built it.
# A home directory shared across a cluster shares its cache: without the CPU in the key, a node
# with AVX-512 would build a kernel that an older node then loads and dies on (SIGILL).

#: the /proc/cpuinfo fields that tell CPUs (and their instruction sets) apart, on x86, ARM, POWER, RISC-V
_CPU_FIELDS = ("vendor_id", "cpu family", "model", "model name", "flags", "CPU implementer", "CPU architecture",
               "CPU variant", "CPU part", "Features", "cpu", "isa")


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """This machine's CPU: its model name and a hash of the identifying fields of ``cpuinfo`` (the
    instruction-set flags above all), or what :mod:`platform` knows where there is no such file."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            first = f.read().split("\n\n", 1)[0]  # the first processor: the one -march=native asks
    except OSError:
        first = ""
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items() if k.strip() in _CPU_FIELDS}
    if not fields:
        return f"{platform.machine()} {platform.processor()}".strip() or "unknown CPU"
    digest = hashlib.sha256("\n".join(f"{k}={fields[k]}" for k in sorted(fields)).encode()).hexdigest()[:16]
    return f"{fields.get('model name') or fields.get('cpu') or platform.machine()} (cpuinfo {digest})"


def _compiler_target(parts: list[str], native: tuple[str, ...]) -> str:
    """What the compiler makes of ``-march=native`` (GCC: ``-Q --help=target``); empty if it cannot say."""
    try:
        r = subprocess.run([*parts, *native, "-Q", "--help=target"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    if r.returncode != 0:  # clang has no -Q --help=target: the CPU description has to do
        return ""
    resolved = re.findall(r"^\s*(-m(?:arch|tune|cpu)=)\s+(\S+)\s*$", r.stdout, re.MULTILINE)
    return " ".join(f"{flag}{value}" for flag, value in resolved)


def _refuse(path: Path, problem: str, fix: str) -> ToolError:
    return ToolError(f"refusing to use the compiled-kernel cache: {path} {problem}, so another user could "
                     f"make this process load their code; {fix} (or set SYSTEC_REF_CACHE to a private directory)")


def _check_entry(path: Path) -> bool:
    """Whether ``path`` exists; raise if it is an entry that someone else could have written
    (not a regular file of the user's, or writable by group or others)."""
    try:
        st = path.lstat()  # never follow a link out of the cache
    except FileNotFoundError:
        return False
    q = shlex.quote(str(path))
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "is not a regular file (a link, perhaps)", f"remove it ('rm {q}')")
    if st.st_uid != os.geteuid():
        raise _refuse(path, f"belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})", f"remove it ('rm {q}')")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(path, f"is writable by {others_write(st.st_mode)} (mode {stat.S_IMODE(st.st_mode):o})",
                      f"remove it ('rm {q}') or run 'chmod go-w {q}'")
    return True


def cache_key(source: str, tc: Toolchain) -> str:
    h = hashlib.sha256()
    # the target only when there is one: the keys of other builds stay what they were
    parts = (source, tc.cc, tc.version, " ".join(tc.cflags), " ".join(REQUIRED_FLAGS))
    parts += (tc.target,) if tc.target else ()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _valid(so: Path, sums: Path) -> bool:
    """The entry exists, is safe to load (see :func:`_check_entry`; raises if not) and matches the
    checksum recorded when it was built."""
    try:
        return _check_entry(so) and _check_entry(sums) and sums.read_text().strip() == _digest(so)
    except OSError:
        return False


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def build(source: str, name: str) -> Path:
    """Compile (or find in the cache) ``source``; return the path of the shared object."""
    if not _NAME.match(name):
        raise ToolError(f"kernel name {name!r} is not a C identifier: it cannot name a compiled kernel")
    tc = toolchain()
    bound = cache.max_bytes()  # a bad value is reported before compiling, not after
    stem = f"{name}-{cache_key(source, tc)[:32]}"
    d = cache_dir()
    so = _hit(d, stem)
    if so is not None:
        return so
    try:
        staging = Path(tempfile.mkdtemp(dir=d, prefix=".build-"))
    except OSError as e:  # a full disk, a read-only mount the permission bits did not tell of
        d = cache.fallback(d, cache.Problem(f"cannot be written ({e.strerror or e})", "free space or make it writable"))
        so = _hit(d, stem)
        if so is not None:
            return so
        staging = Path(tempfile.mkdtemp(dir=d, prefix=".build-"))
    try:
        so = _compile(source, name, tc, d, staging, stem)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    cache.evict(d, keep=stem, bound=bound)
    return so


def _hit(d: Path, stem: str) -> Path | None:
    """The valid entry ``stem`` of ``d`` (marked as just used), if there is one."""
    so, sums = d / f"{stem}.so", d / f"{stem}.sha256"
    if not _valid(so, sums):
        return None
    cache.touch(sums)
    return so


def _compile(source: str, name: str, tc: Toolchain, d: Path, tmp: Path, stem: str) -> Path:
    """Compile ``source`` in ``tmp`` and rename the entry ``stem`` into ``d``."""
    # named as the copy kept next to the entry, and debug info pointing there: the same bytes
    # whichever process builds it, and a sanitizer report names a file that exists
    src = tmp / f"{stem}.c"
    _write_private(src, source)
    out = tmp / f"{name}.so"
    debug = [f"-fdebug-prefix-map={tmp}={d}"] if any(f.startswith("-g") for f in tc.cflags) else []
    cmd = [*shlex.split(tc.cc), *tc.cflags, *debug, *REQUIRED_FLAGS, "-o", str(out), str(src), "-lm"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolError(f"C compiler failed to run: {e}\ncommand: {shlex.join(cmd)}") from None
    if r.returncode != 0:
        keep = d / f"{stem}-failed.c"
        _write_private(keep, source)
        raise ToolError(f"C compilation failed for {keep} (exit {r.returncode})\n"
                        f"command: {shlex.join(cmd)}\n{(r.stderr or r.stdout).strip()}")
    out.chmod(0o700)  # whatever the umask: nobody else may write what this process will load
    staged_sum = tmp / "sum"
    _write_private(staged_sum, _digest(out) + "\n")
    so = d / f"{stem}.so"
    # the object first, then its checksum: a reader that sees the checksum sees the object
    os.replace(out, so)
    os.replace(staged_sum, d / f"{stem}.sha256")
    os.replace(src, d / src.name)
    return so


def load(source: str, name: str) -> ctypes.CDLL:
    """The loaded library for ``source``; microseconds when already loaded in this process."""
    tc = toolchain()
    key = cache_key(source, tc)
    with _lock:
        lib = _loaded.get(key)
        if lib is not None:
            return lib
        if sanitizing() and not _asan_loaded():
            raise ToolError("SYSTEC_REF_SANITIZE is set, but this process was not started with the "
                            "AddressSanitizer runtime: run it as LD_PRELOAD=$(cc -print-file-name=libasan.so) "
                            "ASAN_OPTIONS=detect_leaks=0 python ... (or unset SYSTEC_REF_SANITIZE)")
        so = build(source, name)
        if not _valid(so, so.with_suffix(".sha256")):
            so.unlink(missing_ok=True)
            so = build(source, name)
        try:
            lib = ctypes.CDLL(str(so))
        except OSError as e:
            # a damaged object that still matched its checksum: rebuild once
            so.unlink(missing_ok=True)
            so = build(source, name)
            try:
                lib = ctypes.CDLL(str(so))
            except OSError:
                raise ToolError(f"cannot load compiled kernel {so}: {e}") from None
        _loaded[key] = lib
        return lib
