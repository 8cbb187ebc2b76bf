"""A sparse output in C: updates gathered by row or as entries, reduced, and stored face by face.

A kernel whose output is declared ``sparse`` (``out C[n, n] sparse``) returns a
:class:`~systec_ref.storage.SparseTensor` holding the entries its updates reach, canonical-only in
the output symmetry the compiler found (``replicate-output`` writes no mirror for it).  The program
only ever *accumulates* into it (``C[i,j] += v``; the IR verifier refuses anything else), so the C
needs no random access to the output:

* a **matrix whose rows come in order** (:func:`row_loop`: one outermost loop binds every update's row,
  ``for i``, as in sparse SSYRK's loop order ``i k j``) and has at most 2^:data:`ROW_COLS_LOG2`
  columns: each row's updates accumulate in one dense row (a value and a mark per column — the number
  of the row that last touched it — and the list of columns touched), and when the loop moves to the
  next row its columns are sorted (or, for a row with many, collected from the marks in order) and
  stored straight into the arrays of their faces (``sx_row_end_C``: the strict part's rows, fiber
  starts, columns and values; the diagonal's rows and values) — Gustavson's way, with no buffer of
  updates at all and no pass over the entries at the end (measured on sparse SSYRK: the count and
  face passes were a third of the kernel's time);
* a **matrix under** ``+`` whose loops write nothing else (:func:`runs_twice`): the loops run twice,
  the first time only counting each row's updates (``sx_count_C``), the second putting each update
  at its row's next place (``sx_put_C``); then each row is reduced in a dense accumulator of one row,
  its columns sorted (Gustavson's way of finishing a row, ``sx_reduce_C``);
* otherwise every update is appended to a buffer of entries (``sx_put_C``), which doubles when full;
  one of :data:`COMPACT_FROM` entries or more is first compacted (sorted and combined) and grows
  only if still more than half full.  At the end a matrix's entries are bucketed by row and reduced
  the same way (``sx_rows_C``); other orders, and matrices with too many rows for arrays of their
  length (hypersparse), are sorted (least-significant-digit radix sort, 16-bit digits, the last mode
  first) and combined;
* whenever the updates would take more memory than the **whole output** as a dense array, they go
  into one instead (``dense`` mode): memory never exceeds about twice what the updates or the dense
  output need, whichever is less; an output with more elements than int64 counts is never dense;
* entries equal to the fill (the reduction's identity) are dropped; every entry is checked to be
  canonical (subscripts sorted in each group; a non-canonical write would be a bug of the compiler:
  status 3), split by face (the equality pattern of each group, as :mod:`systec_ref.storage.symmetric`
  stores them) and each face's compressed levels (:class:`~systec_ref.storage.csf.CSF`: ``pos``/``crd``
  per level, 32 bits wide where their values fit — known from the counts, so written at that width —
  then the values) written in one pass over the sorted entries into one block, which the returned
  tensor's arrays are views of (no copy; freed when the last of them is gone).

Why not always one accumulator row: loops that reach the rows in no order (SSYRK's ``k i j``, over a
column of ``A`` at a time) have not finished a row before the next one starts.  Scratch memory comes
from a workspace the caller hands over (:class:`Workspace`: a prepared kernel keeps it per thread, with
a hint of where the last call ended), then from malloc; the block of the result always from malloc.

The kernel's record argument (``int64_t *C``, :func:`record_length` slots) receives the block's address
and size and, per face in :func:`faces` order, its entry count and the offset, length and width of
each array; :func:`read_record` makes every array a view of the block (no copy), freed with the
library's ``sx_free_<kernel>`` when the last of them is gone.

Statuses: 0 done, 2 out of memory for the output's entries (the kernel's other failure, 1, is its
temporaries), 3 a non-canonical entry.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import threading
from dataclasses import dataclass

import numpy as np

from ..dtypes import element, identity
from ..errors import InternalError
from ..ir.edit import unwrap
from ..ir.nodes import Assign, Elem, Idx, Local, Loop, Permute, Program, SparseLevel, Stmt, TensorInfo
from ..lang.names import generated
from ..storage.csf import CSF
from ..storage.faces import face_modes
from ..term import nodes

#: entries the buffer starts with (96 KiB for a matrix of float64)
FIRST_CAPACITY = 4096
#: a buffer of this many entries is compacted (sorted and combined) before it grows
COMPACT_FROM = 1 << 20
#: rows in order are accumulated one at a time in arrays as long as a row (24 bytes per column, marks set
#: on every call) only up to 2^this columns; wider outputs (hypersparse) use the buffer
ROW_COLS_LOG2 = 20


def sparse_output(p: Program) -> TensorInfo | None:
    """The program's output if it is sparse."""
    for t in p.tensors:
        if t.role == "out" and t.format == "sparse":
            return t
    return None


def faces(order: int, groups: tuple[tuple[int, ...], ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every face (key: one equality mask per group) with the modes it stores, in record order: the key read
    as a mixed-radix number (first group most significant), which is how the C numbers them."""
    keys = itertools.product(*(range(1 << (len(g) - 1)) for g in groups)) if groups else [()]
    return [(tuple(k), tuple(face_modes(order, groups, tuple(k)))) for k in keys]


@functools.cache  # (asked on every call of a prepared kernel)
def record_length(order: int, groups: tuple[tuple[int, ...], ...]) -> int:
    """Slots of the record: the block's address and size, then per face its count, (offset, length, width
    in bytes) of its pos and crd per level, and the values' offset; last a hint (given: the entries the
    buffer starts with, -1 to start dense; on return what this call ended with) and the workspace's
    address and size (given; on return the size the call would have used)."""
    return 5 + sum(2 + 6 * len(kept) for _, kept in faces(order, groups))


def names(t: TensorInfo) -> dict[str, str]:
    """The C names of output ``t``'s accumulator and helpers."""
    return {w: generated(w, t.name) for w in ("sparse", "acc", "put", "rows", "grow", "sort", "combine", "densify",
                                              "finish", "init", "take", "give", "set_index", "reduce", "entries",
                                              "finish_rows", "count", "counted", "row_end", "by_rows", "more",
                                              "give_rows")}


def row_loop(p: Program) -> Stmt | None:
    """The loop whose iterations are the rows of the sparse output, one after another, if there is one: a
    matrix output all of whose updates lie in one top-level loop (dense, or over a stored first level)
    and have that loop's variable as their row (``C[i,j] += ...`` under ``for i``), with no rearrangement
    inside (which could move the row).  Its rows then come in increasing order, each finished when the
    loop moves on."""
    out = sparse_output(p)
    if out is None or out.order != 2:
        return None
    writes = [s for s in p.body.body if any(isinstance(n, Elem) and n.tensor == out.name for n in nodes(s))]
    if len(writes) != 1:
        return None
    loop, _ = unwrap(writes[0])
    match loop:
        case Loop(step=step) if step >= 1:
            pass
        case SparseLevel(level=0, parent=None, reverse=False):
            pass
        case _:
            return None
    if any(isinstance(n, Permute) for n in nodes(loop)):
        return None
    updates = [n for n in nodes(loop) if isinstance(n, Assign) and isinstance(n.target, Elem)
               and n.target.tensor == out.name]
    return loop if updates and all(u.target.idx[0] == Idx(loop.var) for u in updates) else None


def by_rows(t: TensorInfo) -> str:
    """C: is the call accumulating one row at a time (:func:`row_loop`, and the row arrays were taken)?  Then
    a first run that counts (:func:`runs_twice`) is skipped."""
    n = names(t)
    return f"{n['by_rows']}(&{n['acc']})"


def row_end(t: TensorInfo, row: str) -> str:
    """The statement at the end of each iteration of the :func:`row_loop`: the row's entries are finished."""
    n = names(t)
    return f"{n['row_end']}(&{n['acc']}, {row});"


def runs_twice(p: Program) -> bool:
    """May the kernel run its loops twice, the first time only counting each row's updates of its sparse
    output?  For a matrix under ``+`` (a ``min``/``max`` update that is NaN is dropped, which the count
    would not know), when the loops write nothing but the output and locals (a temporary would be
    updated twice) and read no temporary but stored copies of sparse inputs."""
    out = sparse_output(p)
    if out is None or out.order != 2 or p.reduction != "+":
        return False
    if any(t.role == "temp" and t.format != "sparse" for t in p.tensors):
        return False
    return all(isinstance(s.target, Local) or s.target.tensor == out.name
               for s in nodes(p.body) if isinstance(s, Assign))


def count(t: TensorInfo, subs: list[str]) -> str:
    """The first run's statement in place of an update at ``subs``."""
    n = names(t)
    return f"{n['count']}(&{n['acc']}, {', '.join(subs)});"


def counted(t: TensorInfo) -> str:
    """The statement between the two runs."""
    n = names(t)
    return f"{n['counted']}(&{n['acc']});"


def free_name(kernel: str) -> str:
    """The exported function that frees a record's block: ``sx_free_<kernel>``."""
    return generated("free", kernel)


def put(t: TensorInfo, subs: list[str], value: str) -> str:
    """The statement that adds ``value`` at ``subs``."""
    n = names(t)
    return f"{n['put']}(&{n['acc']}, {', '.join(subs)}, {value});"


def init(t: TensorInfo, dims: list[str]) -> str:
    """The declaration of the accumulator and the head of the test that it could start (the record is
    the output's parameter, named as the tensor)."""
    n = names(t)
    return f"{n['sparse']} {n['acc']}; if ({n['init']}(&{n['acc']}, {t.name}, {', '.join(dims)}))"


def _row_end(p: Program, n: dict[str, str], T: str, fill: str, face_list, face_of: str, sorted_test: str) -> str:
    """C for rows in order: the end of row ``r`` stores its entries, columns sorted, fill dropped, straight
    into the arrays of their faces (:func:`_row_face_append`)."""
    F = len(face_list)
    cases = "".join(f"        case {f}: {{\n{_row_face_append(n, T, f, len(kept))}        }} break;\n"
                    for f, (_, kept) in enumerate(face_list))
    return f"""
{_sort_fn(n['row_end'] + '_sort', 'int32_t')}
/* is the call accumulating one row at a time (the row arrays taken)? */
static inline int {n['by_rows']}(const {n['sparse']} *o) {{ return o->mark != NULL; }}

/* a copy of array a (len elements of size bytes) with room for cap; NULL if out of memory (a kept) */
static void *{n['more']}({n['sparse']} *o, void *a, size_t size, int64_t len, int64_t cap) {{
    void *b = {n['take']}(o, (size_t)cap * size + 1);
    if (!b) return NULL;
    memcpy(b, a, (size_t)len * size);
    {n['give']}(o, a);
    return b;
}}

/* the arrays rows in order are stored in, given back */
static void {n['give_rows']}({n['sparse']} *o) {{
    for (int f = 0; f < {F}; ++f) {{
        {n['give']}(o, o->frow[f]); {n['give']}(o, o->fpos[f]); {n['give']}(o, o->fcol[f]); {n['give']}(o, o->fval[f]);
        o->frow[f] = o->fpos[f] = NULL; o->fcol[f] = NULL; o->fval[f] = NULL;
    }}
}}

/* row r is finished: its columns in order (from the marks if it touched many, else sorted), stored with
   their values in the arrays of their faces unless they hold the fill */
static void {n['row_end']}({n['sparse']} *o, int64_t r) {{
    const int64_t nt = o->nt, cols = o->d[1];
    if (!o->mark) return;
    const uint32_t gen = o->gen;
    o->nt = 0;
    if (++o->gen == 0) o->gen = 1;  /* the next row's number (the marks start over below after 2^32 - 1) */
    if (nt == 0 || o->failed) {{ if (o->gen == 1) for (int64_t j = 0; j < cols; ++j) o->mark[j] = 0; return; }}
    int32_t *t = o->touched;
    if (nt * 16 > cols) {{  /* a dense row: the marks in column order, no sort */
        int64_t q = 0;
        for (int64_t j = 0; j < cols; ++j)
            if (o->mark[j] == gen) t[q++] = (int32_t)j;
    }} else if (nt > 32) {{
        {n['row_end']}_sort(t, nt);
    }} else {{
        {n['row_end']}_sort_few(t, nt);  /* a row of few columns (inlined: most rows) */
    }}
    for (int64_t q = 0; q < nt; ++q) {{
        const int64_t j = t[q];
        const {T} x = o->racc[j];
        if (x == {fill}) continue;
        const int64_t c[2] = {{r, j}};
        (void)c;  /* (no symmetry: no test reads it) */
        if ({sorted_test}) {{ o->bad = 1; continue; }}  /* (a compiler bug: reported by the finish) */
        switch ((int)({face_of})) {{
{cases}        }}
    }}
    if (o->gen == 1) for (int64_t j = 0; j < cols; ++j) o->mark[j] = 0;  /* (read above: cleared only now) */
}}
"""


def _doubled(n: dict[str, str], f: int, used: str, room: str, arrays: tuple[tuple[str, str], tuple[str, str]],
             pad: str) -> str:
    """C: face ``f``'s two arrays (field, C type), ``used`` of their ``room`` filled: doubled when full (the
    call fails, its arrays kept to be given back, if there is no memory for them)."""
    (a, ta), (b, tb) = arrays
    return f"""{pad}if (o->{used}[{f}] == o->{room}[{f}]) {{  /* more room: doubled */
{pad}    const int64_t cap = 2 * o->{room}[{f}];
{pad}    {ta} *first = {n['more']}(o, o->{a}[{f}], sizeof({ta}), o->{used}[{f}], cap);
{pad}    if (first) o->{a}[{f}] = first;
{pad}    {tb} *second = first ? {n['more']}(o, o->{b}[{f}], sizeof({tb}), o->{used}[{f}], cap) : NULL;
{pad}    if (!second) {{ o->failed = 1; return; }}
{pad}    o->{b}[{f}] = second; o->{room}[{f}] = cap;
{pad}}}
"""


def _row_face_append(n: dict[str, str], T: str, f: int, levels: int) -> str:
    """C: entry (r, j) of value x stored in face ``f`` of a matrix output whose rows come in order.  A face
    of two levels keeps the rows it has entries in (``frow``, each with where its entries start, ``fpos``)
    and each entry's column (``fcol``); a face of one level (the diagonal) keeps each entry's row."""
    pad = " " * 12
    if levels == 2:
        return (_doubled(n, f, "fn", "fcap", (("fval", T), ("fcol", "int32_t")), pad)
                + f"{pad}if (o->flast[{f}] != r) {{  /* the row's first entry in this face */\n"
                + _doubled(n, f, "fnr", "frcap", (("frow", "int64_t"), ("fpos", "int64_t")), pad + "    ")
                + f"{pad}    o->frow[{f}][o->fnr[{f}]] = r; o->fpos[{f}][o->fnr[{f}]++] = o->fn[{f}];\n"
                + f"{pad}    o->flast[{f}] = r;\n"
                + f"{pad}}}\n"
                + f"{pad}o->fcol[{f}][o->fn[{f}]] = (int32_t)j; o->fval[{f}][o->fn[{f}]++] = x;\n")
    return (_doubled(n, f, "fn", "fcap", (("fval", T), ("frow", "int64_t")), pad)
            + f"{pad}o->frow[{f}][o->fn[{f}]] = r; o->fval[{f}][o->fn[{f}]++] = x;\n")


def _face_case(n: dict[str, str], f: int, kept: tuple[int, ...]) -> str:
    """C: the finish's one pass, entry ``c`` of face ``f`` (modes ``kept``) appended to its face's levels,
    written out for the face's number of levels (so each test and index is a constant)."""
    L = len(kept)
    lines = ["                int l = 0;  /* the first level where this entry leaves the previous one's fibers */"]
    if L > 1:
        test = "                if (prev[{f}]) "
        body = ""
        for q in range(L - 1, 0, -1):  # nested: level q reached only if the levels before it are the same
            body = f"if (c[{kept[q - 1]}] == prev[{f}][{kept[q - 1]}]) {{ l = {q};{(' ' + body) if body else ''} }}"
        lines.append(test.format(f=f) + body)
    else:
        lines.append("                (void)l;")
    for m in range(L):
        opened = (f" if ({m} > l) {n['set_index']}(pos[{f}][{m}], pw[{f}], n[{f}][{m - 1}] - 1, n[{f}][{m}]);"
                  if m > 0 else "")
        lines.append(f"                if (l <= {m}) {{{opened} "
                     f"{n['set_index']}(crd[{f}][{m}], cw[{f}][{m}], n[{f}][{m}]++, c[{kept[m]}]); }}")
    lines.append(f"                val[{f}][nv[{f}]++] = o->val[e];")
    lines.append(f"                prev[{f}] = c;")
    return f"            case {f}: {{\n" + "\n".join(lines) + "\n            } break;\n"


def _row_counts(face_list, hint: int) -> str:
    """C: with rows in order, each face's entries and fibers per level, from the arrays its rows filled."""
    out = []
    for f, (_, kept) in enumerate(face_list):
        fibers = f"o->fnr[{f}]" if len(kept) == 2 else f"o->fn[{f}]"
        out.append(f"        count[{f}] = o->fn[{f}]; n[{f}][0] = {fibers};"
                   + (f" n[{f}][1] = o->fn[{f}];" if len(kept) == 2 else ""))
        out.append(f"        if (o->fcap[{f}] > rec[{hint}]) rec[{hint}] = o->fcap[{f}];")
    return "\n".join(out) + "\n"


def _row_fill(n: dict[str, str], T: str, face_list) -> str:
    """C: with rows in order, each face's arrays copied into the block at their widths."""
    out = []
    for f, (_, kept) in enumerate(face_list):
        if len(kept) == 2:
            out.append(f"        for (int64_t q = 0; q < o->fnr[{f}]; ++q) {{\n"
                       f"            {n['set_index']}(crd[{f}][0], cw[{f}][0], q, o->frow[{f}][q]);\n"
                       f"            {n['set_index']}(pos[{f}][1], pw[{f}], q, o->fpos[{f}][q]);\n"
                       f"        }}\n"
                       f"        for (int64_t e = 0; e < o->fn[{f}]; ++e) "
                       f"{n['set_index']}(crd[{f}][1], cw[{f}][1], e, o->fcol[{f}][e]);\n")
        else:
            out.append(f"        for (int64_t e = 0; e < o->fn[{f}]; ++e) "
                       f"{n['set_index']}(crd[{f}][0], cw[{f}][0], e, o->frow[{f}][e]);\n")
        out.append(f"        if (o->fn[{f}]) memcpy(val[{f}], o->fval[{f}], (size_t)o->fn[{f}] * sizeof({T}));\n")
    return "".join(out)


def _sort_fn(name: str, ctype: str) -> str:
    """C: ``name(a, len)`` sorts ``len`` distinct ``ctype`` columns ascending — quicksort (median of three)
    down to runs of 24, then one insertion sort over them all, ``name_few`` (which alone sorts a row of
    few columns, inlined where rows are finished: an out-of-line call there measured 5% slower on sparse
    SSYRK).  Not ``qsort``: it calls its comparison through a pointer for every pair, several times
    slower here (measured on SSYRK rows of 40-60 columns)."""
    return f"""
static inline void {name}_few({ctype} *a, int64_t len) {{
    for (int64_t q = 1; q < len; ++q) {{
        const {ctype} x = a[q];
        int64_t b = q - 1;
        while (b >= 0 && a[b] > x) {{ a[b + 1] = a[b]; --b; }}
        a[b + 1] = x;
    }}
}}

static void {name}({ctype} *a, int64_t len) {{
    int64_t los[64], his[64], lo = 0, hi = len - 1;
    int sp = 0;
    for (;;) {{
        while (hi - lo > 24) {{
            const int64_t mid = lo + (hi - lo) / 2;
            {ctype} x;
            if (a[mid] < a[lo]) {{ x = a[mid]; a[mid] = a[lo]; a[lo] = x; }}
            if (a[hi] < a[lo]) {{ x = a[hi]; a[hi] = a[lo]; a[lo] = x; }}
            if (a[hi] < a[mid]) {{ x = a[hi]; a[hi] = a[mid]; a[mid] = x; }}
            const {ctype} pivot = a[mid];
            int64_t i = lo, j = hi;
            while (i <= j) {{
                while (a[i] < pivot) ++i;
                while (a[j] > pivot) --j;
                if (i <= j) {{ x = a[i]; a[i] = a[j]; a[j] = x; ++i; --j; }}
            }}
            /* the larger part waits, the smaller goes on: never more than log2(len) waiting */
            if (j - lo < hi - i) {{ los[sp] = i; his[sp++] = hi; hi = j; }}
            else {{ los[sp] = lo; his[sp++] = j; lo = i; }}
        }}
        if (sp == 0) break;
        --sp; lo = los[sp]; hi = his[sp];
    }}
    {name}_few(a, len);  /* each column is within 24 places of its own */
}}
"""


def _combine(p: Program, x: str, v: str) -> str:
    """C: ``x`` reduced with ``v`` (the kernel's reduction; same rules as the emitter's updates)."""
    if p.reduction == "+":
        if p.dtype == "int64":
            return f"{x} = (int64_t)((uint64_t){x} + (uint64_t){v});"
        return f"{x} += {v};"
    cmp = "<" if p.reduction == "min" else ">"
    return f"{x} = ({v} {cmp} {x}) ? {v} : {x};"


def _rows(p: Program, n: dict[str, str], T: str, fill: str) -> str:
    """C for a matrix: the entries bucketed by row, then each row reduced in a dense accumulator of one row,
    its columns sorted (Gustavson's way of finishing a row).  The buckets come from the buffer of
    entries (``rows``: one counting pass, one move; -1 when the rows or columns are too many for arrays of
    their length, a hypersparse mode: the caller sorts instead) or straight from the updates when the
    kernel ran its loops twice, first only counting each row's updates (``count``, ``counted``: every
    update then goes to its row's place at once, and no buffer is moved)."""
    return f"""
{_sort_fn(n['rows'] + '_sort', 'int64_t')}
/* each row of (col, v), bucketed by start, reduced in place: distinct columns, sorted, fill dropped;
   start[r + 1] becomes the new end of row r; returns the entries kept */
static int64_t {n['reduce']}({n['sparse']} *o, int64_t *start, int64_t *col, {T} *v, int64_t *seen, {T} *acc) {{
    const int64_t rows = o->d[0], cols = o->d[1];
    for (int64_t j = 0; j < cols; ++j) seen[j] = -1;
    int64_t w = 0, e = start[0];
    for (int64_t r = 0; r < rows; ++r) {{
        const int64_t end = start[r + 1], first = w;
        for (; e < end; ++e) {{  /* (w <= e: a column is written over one already read) */
            const int64_t j = col[e];
            if (seen[j] < 0) {{ seen[j] = 1; col[w++] = j; acc[j] = v[e]; }}
            else {{ {_combine(p, "acc[j]", "v[e]")} }}
        }}
        const int64_t many = w - first;
        if (many * 16 > cols) {{  /* a dense row: its columns in order from the marks, no sort */
            int64_t q = first;
            for (int64_t j = 0; j < cols; ++j)
                if (seen[j] >= 0) col[q++] = j;
        }} else if (many > 32) {{
            {n['rows']}_sort(col + first, many);
        }} else {{
            {n['rows']}_sort_few(col + first, many);  /* a row of few columns (inlined: most rows) */
        }}
        int64_t kept = first;
        for (int64_t q = first; q < w; ++q) {{
            const int64_t j = col[q];
            seen[j] = -1;
            if (!(acc[j] == {fill})) {{ col[kept] = j; v[kept++] = acc[j]; }}
        }}
        w = kept;
        start[r + 1] = w;
    }}
    start[0] = 0;
    return w;
}}

/* the reduced rows as the entries (row, column) and values of o (grown to hold them) */
static int {n['entries']}({n['sparse']} *o, const int64_t *start, const int64_t *col, const {T} *v, int64_t w) {{
    if (o->cap < w) {{
        {n['give']}(o, o->crd); {n['give']}(o, o->val);
        o->crd = {n['take']}(o, (size_t)w * 2 * sizeof(int64_t));
        o->val = {n['take']}(o, (size_t)w * sizeof({T}));
        o->cap = w;
        if (!o->crd || !o->val) return 1;
    }}
    for (int64_t r = 0; r < o->d[0]; ++r)
        for (int64_t q = start[r]; q < start[r + 1]; ++q) {{
            o->crd[2 * q] = r; o->crd[2 * q + 1] = col[q]; o->val[q] = v[q];
        }}
    o->len = w;
    return 0;
}}

/* reduces the buckets (start, col, v) into the entries of o: 0, or 1 if out of memory */
static int {n['finish_rows']}({n['sparse']} *o, int64_t *start, int64_t *col, {T} *v) {{
    const int64_t cols = o->d[1];
    int64_t *seen = {n['take']}(o, (size_t)cols * sizeof(int64_t) + 1);
    {T} *acc = {n['take']}(o, (size_t)cols * sizeof({T}) + 1);
    int bad = !seen || !acc;
    if (!bad) bad = {n['entries']}(o, start, col, v, {n['reduce']}(o, start, col, v, seen, acc));
    {n['give']}(o, seen); {n['give']}(o, acc);
    return bad;
}}

/* the buffer's entries reduced row by row into sorted, distinct entries not holding the fill (-1: not
   tried, 1: out of memory) */
static int {n['rows']}({n['sparse']} *o) {{
    const int64_t len = o->len, rows = o->d[0], cols = o->d[1];
    if (rows > 8 * len + 65536 || cols > 8 * len + 65536) return -1;
    int64_t *start = {n['take']}(o, ((size_t)rows + 1) * sizeof(int64_t));
    int64_t *at = {n['take']}(o, (size_t)rows * sizeof(int64_t) + 1);
    int64_t *col = {n['take']}(o, (size_t)len * sizeof(int64_t) + 1);
    {T} *v = {n['take']}(o, (size_t)len * sizeof({T}) + 1);
    if (!start || !at || !col || !v) {{
        {n['give']}(o, start); {n['give']}(o, at); {n['give']}(o, col); {n['give']}(o, v);
        return -1;
    }}
    /* counted and moved a run of one row at a time: the updates of a row come in runs (a row's stored
       entry times the rest of its column), and one counter bumped per entry would wait on itself */
    for (int64_t r = 0; r <= rows; ++r) start[r] = 0;
    for (int64_t e = 0; e < len;) {{
        const int64_t r = o->crd[2 * e], first = e;
        while (++e < len && o->crd[2 * e] == r) {{}}
        start[r + 1] += e - first;
    }}
    for (int64_t r = 0; r < rows; ++r) {{ start[r + 1] += start[r]; at[r] = start[r]; }}
    for (int64_t e = 0; e < len;) {{
        const int64_t r = o->crd[2 * e];
        int64_t to = at[r];
        do {{ col[to] = o->crd[2 * e + 1]; v[to++] = o->val[e]; }} while (++e < len && o->crd[2 * e] == r);
        at[r] = to;
    }}
    const int bad = {n['finish_rows']}(o, start, col, v);
    {n['give']}(o, start); {n['give']}(o, at); {n['give']}(o, col); {n['give']}(o, v);
    return bad;
}}

/* the first run of the loops: one more update in row s0 (nothing else is computed) */
static inline void {n['count']}({n['sparse']} *o, int64_t s0, int64_t s1) {{
    (void)s1;
    if (o->rstart) o->rstart[s0 + 1]++;
}}

/* between the runs: a place for each row's updates (or, if they would take more memory than every
   element, the dense array; or, with no memory for them, the buffer) */
static void {n['counted']}({n['sparse']} *o) {{
    if (!o->rstart) return;
    const int64_t rows = o->d[0];
    for (int64_t r = 0; r < rows; ++r) o->rstart[r + 1] += o->rstart[r];
    const int64_t all = o->rstart[rows];
    if (o->size >= 0 && (double)all * (sizeof(int64_t) + sizeof({T})) >= (double)o->size * sizeof({T})
        && {n['densify']}(o) == 0) {{
        {n['give']}(o, o->rstart); o->rstart = NULL;
        return;
    }}
    o->rat = {n['take']}(o, (size_t)rows * sizeof(int64_t) + 1);
    o->rcol = {n['take']}(o, (size_t)all * sizeof(int64_t) + 1);
    o->rval = {n['take']}(o, (size_t)all * sizeof({T}) + 1);
    if (!o->rat || !o->rcol || !o->rval) {{
        {n['give']}(o, o->rat); {n['give']}(o, o->rcol); {n['give']}(o, o->rval); {n['give']}(o, o->rstart);
        o->rat = o->rcol = o->rstart = NULL; o->rval = NULL;
        return;
    }}
    for (int64_t r = 0; r < rows; ++r) o->rat[r] = o->rstart[r];
    o->counted = all;
}}
"""


def helper(p: Program, t: TensorInfo, groups: tuple[tuple[int, ...], ...], fill: str, twice: bool = False,
           in_order: bool = False) -> str:
    """The C of output ``t``'s accumulator (see the module's docstring); ``fill`` the C literal of its fill;
    ``twice``: the kernel runs its loops twice, counting first (:func:`runs_twice`); ``in_order``: its rows
    come one after another (:func:`row_loop`), each accumulated in one dense row."""
    n = names(t)
    k, T = t.order, element(p.dtype).c_type
    row = ", ".join(f"int64_t s{q}" for q in range(k))
    store = " ".join(f"c[{q}] = s{q};" for q in range(k))
    offset = "s0"
    for q in range(1, k):
        offset = f"({offset}) * o->d[{q}] + s{q}"
    nan_skip = "    if (v != v) return;  /* a NaN never replaces a value under min/max */\n" \
        if p.reduction != "+" and p.dtype != "int64" else ""
    face_list = faces(k, groups)
    radix = [len(g) for g in groups]
    # the face number of entry c: each group's equality mask, mixed radix
    face_of = "0"
    for g, r in zip(groups, radix):
        mask = " | ".join(f"((int64_t)(c[{a}] == c[{b}]) << {q})" for q, (a, b) in enumerate(zip(g, g[1:])))
        face_of = f"({face_of}) * {1 << (r - 1)} + ({mask})"
    kept_rows = ", ".join("{" + ", ".join(map(str, kept)) + (", " if kept else "") + "-1}" for _, kept in face_list)
    levels = ", ".join(str(len(kept)) for _, kept in face_list)
    sorted_test = " || ".join(f"c[{a}] > c[{b}]" for g in groups for a, b in zip(g, g[1:])) or "0"
    F = len(face_list)
    R = record_length(k, groups)
    # the first run's counters, when the loops run twice and the rows are not too many for them
    # (not when the rows are accumulated one at a time: the count run is skipped then)
    count_init = (f"    if (o->d[0] <= ((int64_t)1 << 22) && !o->mark) {{  /* (more rows: the buffer) */\n"
                  f"        if (!o->dense && (o->rstart = {n['take']}(o, ((size_t)o->d[0] + 1) * sizeof(int64_t))))\n"
                  f"            for (int64_t r = 0; r <= o->d[0]; ++r) o->rstart[r] = 0;\n"
                  f"    }}\n") if twice else ""
    from_buckets = f"{n['finish_rows']}(o, o->rstart, o->rcol, o->rval)" if twice else "1"
    # rows in order: each row's entries stored straight into its faces' arrays (see _row_end)
    row_fields = (f"    /* rows in order, stored by face as each row ends: per face its entries' columns and\n"
                  f"       values (fcol, fval: fn of room for fcap), the rows it has entries in (frow: fnr of room\n"
                  f"       for frcap; a face of one level: each entry's row) with where their entries start (fpos),\n"
                  f"       the last such row (flast); bad: a non-canonical entry */\n"
                  f"    int64_t *frow[{F}], *fpos[{F}], fn[{F}], fnr[{F}], fcap[{F}], frcap[{F}], flast[{F}];\n"
                  f"    int32_t *fcol[{F}];\n"
                  f"    {T} *fval[{F}];\n"
                  f"    int bad;\n") if in_order else ""
    # each face's first room: a face of two levels as many entries as the hint (the largest face's room
    # at the end of the last call), its rows and a face of one level (one entry per row) no more than
    # the output has rows
    rows = "(o->d[0] < o->cap ? (o->d[0] > 1 ? o->d[0] : 1) : o->cap)"
    rows_room = "\n        ".join(
        (f"o->fcap[{f}] = o->cap; o->frcap[{f}] = {rows};\n        "
         f"o->fcol[{f}] = {n['take']}(o, (size_t)o->fcap[{f}] * sizeof(int32_t) + 1); "
         f"o->fpos[{f}] = {n['take']}(o, (size_t)o->frcap[{f}] * sizeof(int64_t) + 1);\n        "
         f"o->frow[{f}] = {n['take']}(o, (size_t)o->frcap[{f}] * sizeof(int64_t) + 1); "
         if len(kept) == 2 else
         f"o->fcap[{f}] = {rows};\n        "
         f"o->frow[{f}] = {n['take']}(o, (size_t)o->fcap[{f}] * sizeof(int64_t) + 1); ")
        + f"o->fval[{f}] = {n['take']}(o, (size_t)o->fcap[{f}] * sizeof({T}) + 1);"
        for f, (_, kept) in enumerate(face_list))
    rows_ok = " && ".join(f"o->fval[{f}] && o->frow[{f}]"
                          + (f" && o->fcol[{f}] && o->fpos[{f}]" if len(kept) == 2 else "")
                          for f, (_, kept) in enumerate(face_list))
    give_rows = f" {n['give_rows']}(o);" if in_order else ""
    rows_decl = f"static void {n['give_rows']}({n['sparse']} *o);\n" if in_order else ""
    row_counts = (f"        if (o->bad) {{ {n['give']}(o, o->crd); {n['give']}(o, o->val);{give_rows} return 3; }}\n"
                  + _row_counts(face_list, R - 3)) if in_order else ""
    row_fill = _row_fill(n, T, face_list) if in_order else ""
    face_cases = "".join(_face_case(n, f, kept) for f, (_, kept) in enumerate(face_list))
    # rows in order: one dense row (racc, mark: the row that last touched a column, touched: those columns),
    # if the columns are not too many for arrays of their length (else the buffer, as for any order)
    # (the face arrays cleared first: a call that starts dense never takes them, and its finish gives them)
    rows_clear = (f"    for (int f = 0; f < {F}; ++f) {{\n"
                  f"        o->frow[f] = o->fpos[f] = NULL; o->fcol[f] = NULL; o->fval[f] = NULL;\n"
                  f"        o->fn[f] = o->fnr[f] = 0; o->fcap[f] = o->frcap[f] = 1; o->flast[f] = -1;\n"
                  f"    }}\n"
                  f"    o->bad = 0;\n") if in_order else ""
    row_init = (f"    if (o->d[1] <= ((int64_t)1 << {ROW_COLS_LOG2}) && !o->dense) {{\n"
                f"        o->mark = {n['take']}(o, (size_t)o->d[1] * sizeof(uint32_t) + 1);\n"
                f"        o->touched = {n['take']}(o, (size_t)o->d[1] * sizeof(int32_t) + 1);\n"
                f"        o->racc = {n['take']}(o, (size_t)o->d[1] * sizeof({T}) + 1);\n"
                f"        {rows_room}\n"
                f"        if (!o->mark || !o->touched || !o->racc || !({rows_ok})) {{\n"
                f"            {n['give']}(o, o->mark); {n['give']}(o, o->touched); {n['give']}(o, o->racc);"
                f"{give_rows}\n"
                f"            o->mark = NULL; o->touched = NULL; o->racc = NULL;\n"
                f"        }} else for (int64_t j = 0; j < o->d[1]; ++j) o->mark[j] = 0;\n"
                f"        o->gen = 1;\n"
                f"    }}\n") if in_order else ""
    # (32-bit marks and columns: stores through them cannot change the struct's 64-bit fields, so the
    # compiler keeps those in registers across updates)
    row_put = ("    if (o->mark) {  /* rows in order: into the row's accumulator */\n"
               "        (void)s0;\n"
               "        if (o->mark[s1] != o->gen) {\n"
               "            o->mark[s1] = o->gen; o->racc[s1] = v; o->touched[o->nt++] = (int32_t)s1;\n"
               f"        }} else {{ {_combine(p, 'o->racc[s1]', 'v')} }}\n"
               "        return;\n"
               "    }\n") if in_order else ""
    counted_put = ("    if (o->counted) {\n"
                   "        const int64_t at = o->rat[s0]++;\n"
                   "        o->rcol[at] = s1; o->rval[at] = v;\n"
                   "        return;\n"
                   "    }\n") if twice else ""
    return f"""/* sparse output {t.name}: updates gathered as entries (see emit/sparse_out.py) */
typedef struct {{
    int64_t len, cap, failed;
    int64_t *crd;   /* len rows of {k} coordinates */
    {T} *val;
    {T} *dense;     /* once entries would take more memory: every element, row-major */
    int64_t d[{k}];
    int64_t size;   /* elements of the whole output; -1 if that overflows */
    char *ws;       /* the caller's workspace: taken from front to back, never given back */
    int64_t ws_size, ws_used, ws_need;
    /* loops run twice (a matrix): the first counts each row's updates (rstart), the second puts each at
       its row's next place (rat) in rcol/rval; counted: how many (0: not in use) */
    int64_t *rstart, *rat, *rcol, counted;
    {T} *rval;
    /* rows in order: the current row's values by column, the number of the row that last touched each
       column (0: none), the columns the current row touched (nt of them) */
    {T} *racc;
    uint32_t *mark, gen;  /* gen: the number of the current row in this call, from 1 (0: untouched) */
    int32_t *touched;
    int64_t nt;
{row_fields}}} {n['sparse']};

/* memory from the workspace while it lasts, else from malloc; ws_need counts what all of it would take */
static void *{n['take']}({n['sparse']} *o, size_t bytes) {{
    const size_t b = (bytes + 63) / 64 * 64;
    o->ws_need += (int64_t)b;
    if (o->ws && (int64_t)b <= o->ws_size - o->ws_used) {{
        void *p = o->ws + o->ws_used;
        o->ws_used += (int64_t)b;
        return p;
    }}
    return malloc(bytes ? bytes : 1);
}}

static void {n['give']}({n['sparse']} *o, void *p) {{
    if (p && !(o->ws && (char *)p >= o->ws && (char *)p < o->ws + o->ws_size)) free(p);
}}

static int {n['densify']}({n['sparse']} *o);
{rows_decl}
static int {n['init']}({n['sparse']} *o, const int64_t *rec, {", ".join(f"int64_t d{q}" for q in range(k))}) {{
    const int64_t d[{k}] = {{{", ".join(f"d{q}" for q in range(k))}}};
    o->ws = (char *)(intptr_t)rec[{R - 2}]; o->ws_size = rec[{R - 1}]; o->ws_used = o->ws_need = 0;
    o->len = 0; o->failed = 0; o->dense = NULL; o->size = 1;
    o->rstart = o->rat = o->rcol = NULL; o->rval = NULL; o->counted = 0;
    o->mark = NULL; o->touched = NULL; o->racc = NULL; o->nt = 0; o->gen = 0; o->crd = NULL; o->val = NULL;
{rows_clear}    for (int q = 0; q < {k}; ++q) {{
        o->d[q] = d[q];
        if (o->size >= 0 && d[q] > 0 && o->size > INT64_MAX / d[q]) o->size = -1;
        else if (o->size >= 0) o->size *= d[q];
    }}
    /* the hint: the room the last call's entries ended with (its buffer, or with rows in order its largest
       face's arrays), or -1 if it went dense (then so does this one) */
    const int64_t hint = rec[{R - 3}];
    o->cap = hint > {FIRST_CAPACITY} ? hint : {FIRST_CAPACITY};
    if (hint < 0 && o->size >= 0) {{
        o->crd = NULL; o->val = NULL; o->cap = 0;
        if ({n['densify']}(o) == 0) return 0;
        o->cap = {FIRST_CAPACITY};  /* no memory for every element: entries after all */
    }}
{row_init}    if (!o->mark) {{  /* (rows in order store their entries by face: no buffer of entries) */
        o->crd = {n['take']}(o, (size_t)o->cap * {k} * sizeof(int64_t));
        o->val = {n['take']}(o, (size_t)o->cap * sizeof({T}));
        if (!o->crd || !o->val) {{ {n['give']}(o, o->crd); {n['give']}(o, o->val); return 1; }}
    }}
{count_init}    return 0;
}}

/* sorts the entries by coordinates: LSD radix, 16-bit digits, the last mode first */
static int {n['sort']}({n['sparse']} *o) {{
    const int64_t len = o->len;
    if (len < 2) return 0;
    int64_t most = 1;
    for (int q = 0; q < {k}; ++q) most = o->d[q] > most ? o->d[q] : most;
    int64_t *cnt = {n['take']}(o, ((size_t)(most < 65536 ? most : 65536) + 1) * sizeof(int64_t));
    int64_t *dst = {n['take']}(o, (size_t)len * {k} * sizeof(int64_t));
    {T} *vdst = {n['take']}(o, (size_t)len * sizeof({T}));
    if (!cnt || !dst || !vdst) {{ {n['give']}(o, cnt); {n['give']}(o, dst); {n['give']}(o, vdst); return 1; }}
    int64_t *src = o->crd;
    {T} *vsrc = o->val;
    for (int m = {k} - 1; m >= 0; --m) {{
        const int64_t hi = o->d[m] - 1;
        for (int shift = 0; shift < 63 && (hi >> shift) > 0; shift += 16) {{
            const int64_t top = hi >> shift, buckets = top < 65535 ? top + 1 : 65536;
            for (int64_t b = 0; b <= buckets; ++b) cnt[b] = 0;
            for (int64_t e = 0; e < len; ++e) cnt[((src[e * {k} + m] >> shift) & 65535) + 1]++;
            for (int64_t b = 0; b < buckets; ++b) cnt[b + 1] += cnt[b];
            for (int64_t e = 0; e < len; ++e) {{
                const int64_t to = cnt[(src[e * {k} + m] >> shift) & 65535]++;
                for (int q = 0; q < {k}; ++q) dst[to * {k} + q] = src[e * {k} + q];
                vdst[to] = vsrc[e];
            }}
            int64_t *tc = src; src = dst; dst = tc;
            {T} *tv = vsrc; vsrc = vdst; vdst = tv;
        }}
    }}
    if (src != o->crd) {{  /* an odd number of passes: the sorted entries are in the scratch arrays */
        memcpy(o->crd, src, (size_t)len * {k} * sizeof(int64_t));
        memcpy(o->val, vsrc, (size_t)len * sizeof({T}));
        dst = src; vdst = vsrc;
    }}
    {n['give']}(o, cnt); {n['give']}(o, dst); {n['give']}(o, vdst);
    return 0;
}}

/* sorted entries: those at one coordinate reduced into one, those holding the fill dropped */
static void {n['combine']}({n['sparse']} *o) {{
    int64_t w = 0;
    for (int64_t e = 0; e < o->len; ++e) {{
        const int64_t *c = o->crd + e * {k};
        int same = w > 0;
        for (int q = 0; same && q < {k}; ++q) same = o->crd[(w - 1) * {k} + q] == c[q];
        if (same) {{ {_combine(p, "o->val[w - 1]", "o->val[e]")} continue; }}
        for (int q = 0; q < {k}; ++q) o->crd[w * {k} + q] = c[q];
        o->val[w++] = o->val[e];
    }}
    int64_t kept = 0;
    for (int64_t e = 0; e < w; ++e) {{
        if (!(o->val[e] == {fill})) {{
            for (int q = 0; q < {k}; ++q) o->crd[kept * {k} + q] = o->crd[e * {k} + q];
            o->val[kept++] = o->val[e];
        }}
    }}
    o->len = kept;
}}
{_rows(p, n, T, fill) if k == 2 else ""}
/* the entries poured into a dense array of every element; later updates go there */
static int {n['densify']}({n['sparse']} *o) {{
    {T} *dense = {n['take']}(o, (size_t)o->size * sizeof({T}) + 1);
    if (!dense) return 1;
    for (int64_t x = 0; x < o->size; ++x) dense[x] = {fill};
    for (int64_t e = 0; e < o->len; ++e) {{
        const int64_t *c = o->crd + e * {k};
        int64_t off = c[0];
        for (int q = 1; q < {k}; ++q) off = off * o->d[q] + c[q];
        {_combine(p, "dense[off]", "o->val[e]")}
    }}
    {n['give']}(o, o->crd); {n['give']}(o, o->val);
    o->crd = NULL; o->val = NULL; o->len = o->cap = 0; o->dense = dense;
    return 0;
}}

/* the buffer is full: the dense array if that takes no more memory than twice the buffer; else a large
   buffer is compacted (sorted and combined) and grows only if still more than half full */
static void {n['grow']}({n['sparse']} *o) {{
    if (o->failed) return;
    const int64_t cap = 2 * o->cap;
    if (o->size >= 0 && (double)cap * ({k} * sizeof(int64_t) + sizeof({T})) >= (double)o->size * sizeof({T})
        && {n['densify']}(o) == 0) return;
    if (o->cap >= {COMPACT_FROM}) {{
        if ({n['sort']}(o)) {{ o->failed = 1; return; }}
        {n['combine']}(o);
        if (o->len <= o->cap / 2) return;
    }}
    int64_t *c = {n['take']}(o, (size_t)cap * {k} * sizeof(int64_t));
    {T} *v = {n['take']}(o, (size_t)cap * sizeof({T}));
    if (!c || !v) {{ {n['give']}(o, c); {n['give']}(o, v); o->failed = 1; return; }}
    memcpy(c, o->crd, (size_t)o->len * {k} * sizeof(int64_t));
    memcpy(v, o->val, (size_t)o->len * sizeof({T}));
    {n['give']}(o, o->crd); {n['give']}(o, o->val);
    o->crd = c; o->val = v; o->cap = cap;
}}

/* adds v at (s0, ...): appended as an entry (or into the dense array) */
static inline void {n['put']}({n['sparse']} *o, {row}, {T} v) {{
{nan_skip}{row_put}{counted_put}    if (v == {fill}) return;  /* adds nothing: the fill is the reduction's identity */

    if (o->len == o->cap && !o->dense) {n['grow']}(o);
    if (o->dense) {{ {T} *x = &o->dense[{offset}]; {_combine(p, "*x", "v")} return; }}
    if (o->failed) return;
    int64_t *c = o->crd + o->len * {k};
    {store}
    o->val[o->len++] = v;
}}

{_row_end(p, n, T, fill, face_list, face_of, sorted_test) if in_order else ""}
/* a[e] = x in an index array of width w bytes (4: int32, 8: int64) */
static inline void {n['set_index']}(void *a, int64_t w, int64_t e, int64_t x) {{
    if (w == 4) ((int32_t *)a)[e] = (int32_t)x; else ((int64_t *)a)[e] = x;
}}

/* the entries sorted, combined, checked canonical, split by face into compressed levels in one block:
   rec[0] its address; per face: entries, (pos, length, crd, length) per level, values */
static int {n['finish']}({n['sparse']} *o, int64_t *rec) {{
    static const int levels[{F}] = {{{levels}}};
    static const int kept[{F}][{k + 1}] = {{{kept_rows}}};
    if (o->failed) {{
        {n['give']}(o, o->crd); {n['give']}(o, o->val); {n['give']}(o, o->dense);{give_rows}
        {n['give']}(o, o->mark); {n['give']}(o, o->touched); {n['give']}(o, o->racc);
        return 2;
    }}
    rec[{R - 3}] = o->dense ? -1 : o->cap;
    int64_t count[{F}] = {{0}}, n[{F}][{k}] = {{{{0}}}};
    if (o->mark) {{  /* rows in order: each face's arrays are filled, sorted and distinct */
        {n['give']}(o, o->mark); {n['give']}(o, o->touched); {n['give']}(o, o->racc); {n['give']}(o, o->rstart);
{row_counts}    }} else {{
    if (o->counted) {{  /* the buckets the second run filled */
        const int bad = {from_buckets};
        {n['give']}(o, o->rstart); {n['give']}(o, o->rat); {n['give']}(o, o->rcol); {n['give']}(o, o->rval);
        if (bad) {{ {n['give']}(o, o->crd); {n['give']}(o, o->val); return 2; }}
    }} else if (o->dense) {{
        int64_t count = 0, c[{k}] = {{0}};
        for (int pass = 0; pass < 2; ++pass) {{
            if (pass == 1) {{
                o->crd = {n['take']}(o, (size_t)count * {k} * sizeof(int64_t) + 1);
                o->val = {n['take']}(o, (size_t)count * sizeof({T}) + 1);
                if (!o->crd || !o->val) {{
                    {n['give']}(o, o->crd); {n['give']}(o, o->val); {n['give']}(o, o->dense); return 2;
                }}
                o->len = 0;
            }}
            for (int q = 0; q < {k}; ++q) c[q] = 0;
            for (int64_t x = 0; x < o->size; ++x) {{
                if (!({sorted_test}) && !(o->dense[x] == {fill})) {{
                    if (pass == 1) {{
                        for (int q = 0; q < {k}; ++q) o->crd[o->len * {k} + q] = c[q];
                        o->val[o->len++] = o->dense[x];
                    }} else ++count;
                }}
                for (int q = {k} - 1; q >= 0 && ++c[q] == o->d[q]; --q) c[q] = 0;
            }}
        }}
        {n['give']}(o, o->dense); o->dense = NULL;
    }} else {{
        {"if (" + n['rows'] + "(o) < 0)" if k == 2 else "if (1)"} {{  /* (no row accumulator: sort) */
            if ({n['sort']}(o)) {{ {n['give']}(o, o->crd); {n['give']}(o, o->val); return 2; }}
            {n['combine']}(o);
        }}
    }}
    /* four counters per face, one per entry mod 4: one counter bumped per entry would wait on itself */
    int64_t count4[4][{F}] = {{{{0}}}};
    for (int64_t e = 0; e < o->len; ++e) {{
        const int64_t *c = o->crd + e * {k};
        (void)c;  /* (no symmetry: no test reads it) */
        if ({sorted_test}) {{ {n['give']}(o, o->crd); {n['give']}(o, o->val); return 3; }}
        count4[e & 3][{face_of}]++;
    }}
    for (int f = 0; f < {F}; ++f) count[f] = count4[0][f] + count4[1][f] + count4[2][f] + count4[3][f];
    }}
    /* each index array 32 bits wide where its values fit, as the storage keeps them: positions by the
       face's entries, coordinates by the extent of their mode (known now, so written at their width) */
    int64_t pw[{F}], cw[{F}][{k}];
    size_t bytes = 0;
    for (int f = 0; f < {F}; ++f) {{
        pw[f] = count[f] <= INT32_MAX ? 4 : 8;
        for (int l = 0; l < levels[f]; ++l) {{
            cw[f][l] = o->d[kept[f][l]] - 1 <= INT32_MAX ? 4 : 8;
            bytes += ((size_t)pw[f] * (l == 0 ? 2 : (size_t)count[f] + 1) + 7) / 8 * 8
                     + ((size_t)cw[f][l] * (size_t)count[f] + 7) / 8 * 8;
        }}
        bytes += ((size_t)count[f] * sizeof({T}) + 7) / 8 * 8;
    }}
    /* (malloc, not the workspace: the caller keeps the block as the arrays of the tensor it returns) */
    char *block = malloc(bytes + 8), *const base = block;
    if (!block) {{ {n['give']}(o, o->crd); {n['give']}(o, o->val);{give_rows} return 2; }}
    rec[0] = (int64_t)(intptr_t)block;
    rec[1] = (int64_t)bytes;
    rec[{R - 1}] = o->ws_need;
    void *pos[{F}][{k}] = {{{{0}}}}, *crd[{F}][{k}] = {{{{0}}}};
    {T} *val[{F}];
    for (int f = 0; f < {F}; ++f) {{
        for (int l = 0; l < levels[f]; ++l) {{
            pos[f][l] = block; block += ((size_t)pw[f] * (l == 0 ? 2 : (size_t)count[f] + 1) + 7) / 8 * 8;
            crd[f][l] = block; block += ((size_t)cw[f][l] * (size_t)count[f] + 7) / 8 * 8;
        }}
        val[f] = ({T} *)block; block += ((size_t)count[f] * sizeof({T}) + 7) / 8 * 8;
        if (levels[f] > 0) {n['set_index']}(pos[f][0], pw[f], 0, 0);
    }}
    if (o->mark) {{  /* rows in order: each face's arrays copied at their widths */
{row_fill}    }} else {{
        /* one pass over the entries (sorted): each goes to its face, opening the fibers it leaves the
           last entry of that face by */
        int64_t nv[{F}] = {{0}};
        const int64_t *prev[{F}] = {{0}};
        for (int64_t e = 0; e < o->len; ++e) {{
            const int64_t *c = o->crd + e * {k};
            (void)c;
            switch ((int)({face_of})) {{
{face_cases}            }}
        }}
        (void)prev;  /* (faces of one level: never compared) */
    }}
    int64_t *slot = rec + 2;
    for (int f = 0; f < {F}; ++f) {{
        const int L = levels[f];
        if (L > 0) {n['set_index']}(pos[f][0], pw[f], 1, n[f][0]);
        for (int l = 1; l < L; ++l) {n['set_index']}(pos[f][l], pw[f], n[f][l - 1], n[f][l]);
        *slot++ = count[f];
        for (int l = 0; l < L; ++l) {{
            *slot++ = (int64_t)((char *)pos[f][l] - base); *slot++ = l == 0 ? 2 : n[f][l - 1] + 1; *slot++ = pw[f];
            *slot++ = (int64_t)((char *)crd[f][l] - base); *slot++ = n[f][l]; *slot++ = cw[f][l];
        }}
        *slot++ = (int64_t)((char *)val[f] - base);
    }}
    {n['give']}(o, o->crd); {n['give']}(o, o->val);{give_rows}
    return 0;
}}"""


class Workspace:
    """The scratch a sparse output's C takes its memory from, kept between the calls of one prepared kernel
    (one per thread: calls from several threads at once never share it).  Each call says how much it
    would have used; the next gets that much (and a quarter more), so a kernel called again on data of
    the same size touches no fresh memory — fresh pages cost a fault each, more than the work of a
    small output.  It also keeps the hint of the last call: the room its entries ended with (its buffer
    of entries or, rows in order, its largest face's arrays: the next starts there instead of growing
    to it), or that it went dense (the next starts dense).

    The record a call fills is kept too, with the addresses of both: a small output's call lasts tens
    of microseconds, and asking numpy for an array's address costs about one each."""

    def __init__(self, length: int) -> None:
        self._length = length
        self._local = threading.local()

    def _state(self) -> _Scratch:
        state = getattr(self._local, "state", None)
        if state is None:
            rec = np.zeros(self._length, dtype=np.int64)
            state = self._local.state = _Scratch(rec, rec.ctypes.data, _NO_WORKSPACE, 0, 0)
        return state

    def give(self) -> tuple[np.ndarray, int]:
        """The record for the next call, cleared, with the workspace and the hint in its last three slots;
        and the record's address."""
        s = self._state()
        s.record[:-3] = 0
        s.record[-3:] = (s.hint, s.address, s.array.size)
        return s.record, s.record_address

    def space(self) -> tuple[int, int]:
        """The workspace's address and size (to check a block does not lie in it)."""
        s = self._state()
        return s.address, s.array.size

    def ended(self, rec: np.ndarray) -> None:
        """After a call: keep its hint, and make the workspace as large as it wanted."""
        s = self._state()
        s.hint = int(rec[-3])
        need = int(rec[-1])
        if need > s.array.size:
            s.array = np.empty(need + need // 4 + 4096, dtype=np.uint8)
            s.address = s.array.ctypes.data


@dataclass
class _Scratch:
    """One thread's record, workspace and hint (see :class:`Workspace`)."""
    record: np.ndarray
    record_address: int
    array: np.ndarray
    address: int
    hint: int


_NO_WORKSPACE = np.zeros(0, dtype=np.uint8)


class _Block:
    """Owns the block a kernel malloc'ed for a sparse output: every array of the result is a view of the
    ctypes buffer over the block, which holds this; when the last view is gone the block is freed.  (A
    ``weakref.finalize`` does the same at several times the cost, which a small output's call feels.)"""

    __slots__ = ("_address", "_free")

    def __init__(self, address: int, free) -> None:
        # (the pointer made now: at interpreter exit ctypes may be gone before the last view is)
        self._address, self._free = ctypes.c_void_p(address), free

    def __del__(self) -> None:
        self._free(self._address)


def read_record(p: Program, t: TensorInfo, groups: tuple[tuple[int, ...], ...], shape: tuple[int, ...],
                rec: np.ndarray, free, space: tuple[int, int]) -> object:
    """The :class:`~systec_ref.storage.SparseTensor` a finished kernel's record describes: every array a
    view of the block the kernel malloc'ed, not a copy (a copy would touch as many bytes again); the
    block is freed with the library's ``free`` when the last of them is gone (``space``: the
    workspace's address and size, which the block never lies in)."""
    from ..storage.symmetric import SparseTensor

    dtype = np.dtype(element(p.dtype).numpy)
    out: dict[tuple[int, ...], CSF] = {}
    slots = rec.tolist()
    block, size = slots[0], slots[1]
    start, length = space
    if start <= block < start + length:
        raise InternalError(f"sparse output {t.name}: its block lies in the workspace, which the next call reuses")
    if size:
        buf = (ctypes.c_char * size).from_address(block)
        buf._owner = _Block(block, free)  # numpy's views keep buf alive, buf the block
        data = np.frombuffer(buf, dtype=np.uint8)
    else:
        free(ctypes.c_void_p(block))
        data = _NO_WORKSPACE
    at = 2
    for key, kept in _faces(t.order, groups):
        count = slots[at]
        at += 1
        levels = []
        for _ in kept:
            levels.append([_view(data, *slots[at + 3 * q:at + 3 * q + 3]) for q in range(2)])
            at += 6
        if count:
            vals = np.frombuffer(data, dtype=dtype, count=count, offset=slots[at])
            out[key] = CSF(tuple(shape[m] for m in kept), tuple(lv[0] for lv in levels),
                           tuple(lv[1] for lv in levels), vals)
        at += 1
    at += 3  # the hint's and the workspace's slots
    if at != len(rec):
        raise InternalError(f"sparse output {t.name}: read {at} slots of a record of {len(rec)}")
    fill = identity(p.reduction, p.dtype)
    return SparseTensor(tuple(int(s) for s in shape), groups, fill, dtype, out)


@functools.cache
def _faces(order: int, groups: tuple[tuple[int, ...], ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    return faces(order, groups)


def _view(data: np.ndarray, offset: int, length: int, width: int) -> np.ndarray:
    """An index array of the block: ``length`` integers of ``width`` bytes at ``offset``."""
    return np.frombuffer(data, dtype=np.int32 if width == 4 else np.int64, count=length, offset=offset)
