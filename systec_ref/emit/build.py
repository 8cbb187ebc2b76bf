"""Compile generated C into a shared object, with an on-disk and in-process cache.

* Compiler: ``$CC`` (default ``cc``); flags: ``$CFLAGS`` (default
  :data:`DEFAULT_CFLAGS`, chosen for speed: reductions may be reassociated so
  they vectorize, but no ``-ffast-math`` — NaN and infinity keep their
  meaning), plus the flags a shared object needs.
* Cache: ``$SYSTEC_REF_CACHE`` (default ``$XDG_CACHE_HOME/systec_ref`` or
  ``~/.cache/systec_ref``), created private to the user.  An entry is keyed
  by a SHA-256 of the source, the compiler's version text and the flags; it
  is written to a temporary name and renamed into place (atomic, so two
  processes compiling the same kernel both succeed), and a sidecar records
  the SHA-256 of the shared object, checked before every load: a corrupted
  or truncated entry is rebuilt, never loaded.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError

#: fast, and NaN/inf-preserving: reductions may be reassociated (and so vectorized), as
#: every BLAS does; results stay within the 1e-12 tolerance of the interpreter.
DEFAULT_CFLAGS = "-O3 -march=native -fno-math-errno -fassociative-math -fno-signed-zeros -fno-trapping-math"
REQUIRED_FLAGS = ["-std=c99", "-fPIC", "-shared"]

_lock = threading.Lock()
_loaded: dict[str, ctypes.CDLL] = {}
_versions: dict[str, str] = {}


@dataclass(frozen=True)
class Toolchain:
    cc: str
    cflags: tuple[str, ...]
    version: str

    def describe(self) -> str:
        return f"{self.cc} {' '.join(self.cflags)} ({self.version.splitlines()[0] if self.version else '?'})"


def toolchain() -> Toolchain:
    cc = os.environ.get("CC", "cc")
    flags = tuple(shlex.split(os.environ.get("CFLAGS", DEFAULT_CFLAGS)))
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
    return Toolchain(cc, flags, _versions[cc])


def cache_dir() -> Path:
    root = os.environ.get("SYSTEC_REF_CACHE")
    if root:
        d = Path(root)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = Path(base) / "systec_ref"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def cache_key(source: str, tc: Toolchain) -> str:
    h = hashlib.sha256()
    for part in (source, tc.cc, tc.version, " ".join(tc.cflags), " ".join(REQUIRED_FLAGS)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _valid(so: Path, sums: Path) -> bool:
    try:
        return so.is_file() and sums.is_file() and sums.read_text().strip() == _digest(so)
    except OSError:
        return False


def build(source: str, name: str) -> Path:
    """Compile (or find in the cache) ``source``; return the path of the shared object."""
    tc = toolchain()
    key = cache_key(source, tc)
    d = cache_dir()
    so, sums = d / f"{name}-{key[:32]}.so", d / f"{name}-{key[:32]}.sha256"
    if _valid(so, sums):
        return so
    with tempfile.TemporaryDirectory(dir=d, prefix=".build-") as tmp:
        src = Path(tmp) / f"{name}.c"
        src.write_text(source)
        out = Path(tmp) / f"{name}.so"
        cmd = [*shlex.split(tc.cc), *tc.cflags, *REQUIRED_FLAGS, "-o", str(out), str(src), "-lm"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as e:
            raise ToolError(f"C compiler failed to run: {e}\ncommand: {shlex.join(cmd)}") from None
        if r.returncode != 0:
            keep = d / f"{name}-{key[:32]}-failed.c"
            keep.write_text(source)
            raise ToolError(f"C compilation failed for {keep} (exit {r.returncode})\n"
                            f"command: {shlex.join(cmd)}\n{(r.stderr or r.stdout).strip()}")
        digest = _digest(out)
        staged_sum = Path(tmp) / "sum"
        staged_sum.write_text(digest + "\n")
        # the object first, then its checksum: a reader that sees the checksum sees the object
        os.replace(out, so)
        os.replace(staged_sum, sums)
        (d / f"{name}-{key[:32]}.c").write_text(source)
    return so


def load(source: str, name: str) -> ctypes.CDLL:
    """The loaded library for ``source``; microseconds when already loaded in this process."""
    tc = toolchain()
    key = cache_key(source, tc)
    with _lock:
        lib = _loaded.get(key)
        if lib is not None:
            return lib
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
