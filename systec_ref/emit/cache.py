"""The compiled-kernel cache directory: where it is, whether it may be used, how large it may grow.

* Where: ``$SYSTEC_REF_CACHE``, else ``$XDG_CACHE_HOME/systec_ref``, else ``~/.cache/systec_ref``;
  created ``0700``.
* Safety: the directory must be the user's own and writable by nobody else, and no directory above
  it may be writable by others without the sticky bit: otherwise another user could make this
  process load their code.
* Fallback: a directory that cannot be created or written, or that is not safe, is never used (and
  nothing is loaded from it).  The process compiles into a private temporary directory instead (made
  by :func:`tempfile.mkdtemp`, ``0700``, one per process, removed at exit) and says so once, with a
  :class:`CacheWarning` naming the directory, the reason and the fix.  A cache that cannot be used
  costs compile time, not correctness, so it is not an error.
* Entries: ``NAME-KEY.so``, ``NAME-KEY.sha256`` and ``NAME-KEY.c`` (``NAME-KEY-failed.c`` after a failed
  compilation), ``KEY`` 32 hexadecimal digits.  Eviction and :func:`clear` touch only names of this
  form, never anything else in the directory.
* Size: at most ``$SYSTEC_REF_CACHE_MAX_BYTES`` (default :data:`DEFAULT_MAX_BYTES`; a plain number of
  bytes or one with a ``K``/``M``/``G`` suffix).  A cache hit refreshes its entry's modification time;
  after each new build the least recently used entries are removed, whole, until the cache fits,
  never the entry just built.  Other processes may be evicting or building at the same time: a file
  that vanishes meanwhile is simply gone already.
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import stat
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError

#: 256 MiB: a few thousand kernels; enough that a working set is never evicted, small next to a home
DEFAULT_MAX_BYTES = 256 * 2**20
MAX_BYTES_VAR = "SYSTEC_REF_CACHE_MAX_BYTES"
#: a file of a cache entry; ``stem`` names the entry (its files are kept and removed together)
ENTRY = re.compile(r"(?P<stem>[A-Za-z_][A-Za-z0-9_]{0,63}-[0-9a-f]{32})(?:\.so|\.sha256|\.c|-failed\.c|\.stages)\Z")
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}

_lock = threading.Lock()
#: (pid, directory) of this process's fallback; a forked child makes its own (the parent removes its one at exit)
_fallback_dir: tuple[int, Path] | None = None
_warned = False


class CacheWarning(UserWarning):
    """The compiled-kernel cache directory cannot be used; kernels are compiled into a temporary directory."""


@dataclass(frozen=True)
class Problem:
    """Why a directory cannot be the cache, and what the user can do about it."""

    why: str
    fix: str


@dataclass(frozen=True)
class Entry:
    stem: str
    files: tuple[Path, ...]
    size: int
    used: float  #: the latest modification time of its files (a hit refreshes it)


@dataclass(frozen=True)
class CacheInfo:
    directory: Path
    entries: int
    total_bytes: int
    max_bytes: int
    problem: Problem | None


def configured_dir() -> Path:
    """The directory the environment names (it may not exist, or be unusable)."""
    root = os.environ.get("SYSTEC_REF_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # the XDG rules: a relative XDG_CACHE_HOME is invalid and ignored
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "systec_ref"


def cache_dir() -> Path:
    """The directory to compile into: the configured one if it can be used, else the private fallback."""
    d = configured_dir()
    problem = _problem(d, create=True)
    return d if problem is None else fallback(d, problem)


def fallback(d: Path, problem: Problem) -> Path:
    """This process's private temporary cache, used instead of ``d``; warn (once per process) why."""
    global _fallback_dir, _warned
    with _lock:
        if _fallback_dir is None or _fallback_dir[0] != os.getpid():
            try:
                tmp = Path(tempfile.mkdtemp(prefix="systec_ref-cache-"))  # 0700, new: nobody else's code
            except OSError as e:
                raise ToolError(f"cannot use the compiled-kernel cache {d}: it {problem.why}, and no temporary "
                                f"directory could be made in {tempfile.gettempdir()} ({e.strerror or e}): "
                                f"{problem.fix}, or set SYSTEC_REF_CACHE to a private writable directory") from None
            atexit.register(_remove_fallback, tmp, os.getpid())
            _fallback_dir = (os.getpid(), tmp)
        tmp = _fallback_dir[1]
        if not _warned:
            _warned = True
            warnings.warn(f"cannot use the compiled-kernel cache {d}: it {problem.why}; compiling into {tmp} "
                          f"instead, which is removed at exit (to keep compiled kernels: {problem.fix}, or set "
                          f"SYSTEC_REF_CACHE to a private writable directory)", CacheWarning, stacklevel=3)
    return tmp


def _remove_fallback(tmp: Path, pid: int) -> None:
    if os.getpid() == pid:  # not from a forked child, which may still be using it
        shutil.rmtree(tmp, ignore_errors=True)


def format_warning(message, category, filename, lineno, line=None) -> str:
    """:func:`warnings.formatwarning` for a command line: a cache warning is one line (no source line)."""
    if isinstance(category, type) and issubclass(category, CacheWarning):
        return f"warning: {message}\n"
    return _plain_format(message, category, filename, lineno, line)


_plain_format = warnings.formatwarning


# -- is a directory usable? ------------------------------------------------------------------

def _problem(d: Path, create: bool) -> Problem | None:
    """Why ``d`` cannot be the cache (created first if ``create``), or None if it can."""
    q = shlex.quote(str(d))
    if str(d).startswith("~"):
        return Problem("is under a home directory that cannot be found (HOME is unset)", "set HOME")
    if create:
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            return Problem("is not a directory", f"remove it ('rm {q}')")
        except OSError as e:
            return Problem(f"cannot be created ({e.strerror or e})", f"create it ('mkdir -p -m 700 {q}')")
    try:
        st = d.stat()  # a symbolic link is followed: what matters is the directory really used
    except OSError as e:
        return Problem(f"cannot be examined ({e.strerror or e})", "check that it exists and is yours")
    if not stat.S_ISDIR(st.st_mode):
        return Problem("is not a directory", f"remove it ('rm {q}')")
    return _unsafe(d, st) or (None if os.access(d, os.W_OK | os.X_OK) else
                              Problem("is not writable", f"run 'chmod u+rwx {q}'"))


def others_write(mode: int) -> str:
    who = [w for w, bit in (("its group", stat.S_IWGRP), ("other users", stat.S_IWOTH)) if mode & bit]
    return " and ".join(who)


def _unsafe(d: Path, st: os.stat_result) -> Problem | None:
    """Why another user could put code into ``d`` (it is theirs, or they may write to it or replace it)."""
    q = shlex.quote(str(d))
    if st.st_uid != os.geteuid():
        return Problem(f"belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}), so it could hold their code",
                       f"remove it ('rm -r {q}') so it is created afresh")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return Problem(f"is writable by {others_write(st.st_mode)} (mode {stat.S_IMODE(st.st_mode):o}), so it "
                       f"could hold their code", f"run 'chmod go-w {q}'")
    for parent in Path(os.path.realpath(d)).parents:
        try:
            pst = parent.stat()
        except OSError:
            continue
        if pst.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not pst.st_mode & stat.S_ISVTX:
            return Problem(f"is below {parent}, which is writable by {others_write(pst.st_mode)} without the sticky "
                           f"bit (mode {stat.S_IMODE(pst.st_mode):o}), so they could replace the cache",
                           f"run 'chmod go-w {shlex.quote(str(parent))}' or move the cache")
    return None


# -- size and eviction -------------------------------------------------------------------------

def max_bytes() -> int:
    """The size bound: ``$SYSTEC_REF_CACHE_MAX_BYTES`` (bytes, or with a K/M/G suffix) or the default."""
    text = os.environ.get(MAX_BYTES_VAR, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    m = re.fullmatch(r"(\d+)\s*([KMG]?)(?:i?B)?", text, re.IGNORECASE)
    if not m:
        raise ToolError(f"{MAX_BYTES_VAR}={text!r} is not a size: give a number of bytes, optionally with a K, M "
                        f"or G suffix (e.g. 268435456 or 256M)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def entries(d: Path) -> list[Entry]:
    """The cache entries in ``d`` (files named as ours only), whatever other processes are doing."""
    try:
        names = os.listdir(d)
    except OSError:
        return []
    groups: dict[str, list[tuple[Path, os.stat_result]]] = {}
    for name in names:
        m = ENTRY.match(name)
        if not m:
            continue
        try:
            st = (d / name).lstat()
        except OSError:  # evicted or replaced meanwhile
            continue
        if not stat.S_ISDIR(st.st_mode):
            groups.setdefault(m.group("stem"), []).append((d / name, st))
    # the checksum first: an entry without it is rebuilt, never loaded, whenever a reader looks
    order = {".sha256": 0, ".so": 1}
    return [Entry(stem, tuple(sorted((p for p, _ in fs), key=lambda p: order.get(p.suffix, 2))),
                  sum(st.st_size for _, st in fs), max(st.st_mtime for _, st in fs))
            for stem, fs in groups.items()]


def touch(path: Path) -> None:
    """Mark an entry as just used (its checksum file's modification time), for least-recently-used eviction."""
    try:
        os.utime(path)
    except OSError:  # read-only, or evicted meanwhile: it only makes the entry look older
        pass


def _remove(entry: Entry) -> list[Path]:
    removed = []
    for f in entry.files:
        try:
            f.unlink()
            removed.append(f)
        except FileNotFoundError:  # another process removed it first
            pass
        except OSError:  # cannot be removed (read-only): it stays, and so does its size
            pass
    return removed


def evict(d: Path, keep: str, bound: int) -> list[Path]:
    """Remove the least recently used entries of ``d`` but ``keep`` (a stem) until it holds at most
    ``bound`` bytes; return the files removed."""
    found = entries(d)
    total = sum(e.size for e in found)
    removed: list[Path] = []
    for e in sorted(found, key=lambda e: e.used):
        if total <= bound:
            break
        if e.stem != keep:
            removed += _remove(e)
            total -= e.size
    return removed


# -- the 'cache' command -----------------------------------------------------------------------

def info() -> CacheInfo:
    """What the configured cache holds (the directory is not created)."""
    d = configured_dir()
    bound = max_bytes()
    problem = _problem(d, create=False) if d.exists() else _uncreatable(d)
    found = entries(d)
    return CacheInfo(d, len(found), sum(e.size for e in found), bound, problem)


def _uncreatable(d: Path) -> Problem | None:
    """Why the missing directory ``d`` could not be created (judged by its nearest existing ancestor)."""
    if str(d).startswith("~"):
        return _problem(d, create=False)
    above = Path(os.path.abspath(d)).parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if above.is_dir() and os.access(above, os.W_OK | os.X_OK):
        return None
    return Problem(f"cannot be created ({above} is {'not writable' if above.is_dir() else 'not a directory'})",
                   f"make {above} a writable directory")


def clear() -> tuple[Path, list[Path]]:
    """Remove every entry of the configured cache (files named as ours, nothing else); return them."""
    d = configured_dir()
    try:
        st = d.stat()
    except FileNotFoundError:
        return d, []
    except OSError as e:
        raise ToolError(f"cannot examine the compiled-kernel cache {d}: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ToolError(f"the compiled-kernel cache {d} is not a directory: nothing to clear")
    if st.st_uid != os.geteuid():
        raise ToolError(f"the compiled-kernel cache {d} belongs to uid {st.st_uid}, not to you: not clearing it "
                        f"(set SYSTEC_REF_CACHE to your own cache)")
    removed: list[Path] = []
    for e in entries(d):
        removed += _remove(e)
    return d, removed
