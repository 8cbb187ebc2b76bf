"""A sparse output in C: updates gathered as entries, then sorted, combined and stored face by face.

A kernel whose output is declared ``sparse`` (``out C[n, n] sparse``) returns a
:class:`~systec_ref.storage.SparseTensor` holding the entries its updates reach, canonical-only in
the output symmetry the compiler found (``replicate-output`` writes no mirror for it).  The program
only ever *accumulates* into it (``C[i,j] += v``; the IR verifier refuses anything else), so the C
needs no random access to the output:

* every update goes into a **hash table** of entries (open addressing, linear probing, coordinates
  mixed by splitmix64's finalizer): added to its entry, or a new one (``sx_put_C``).  The table
  starts at :data:`FIRST_CAPACITY` slots and doubles when half full;
* if a doubled table would take more memory than the **whole output** as a dense array, the entries
  are poured into one and later updates go there (``dense`` mode): memory never exceeds about twice
  what the entries or the dense output need, whichever is less; an output with more elements than
  int64 counts is never dense;
* at the end the entries are moved to the front of the table, sorted (least-significant-digit radix
  sort, 16-bit digits, the last mode first), combined and those equal to the fill (the reduction's
  identity) dropped (dense mode: the canonical elements not holding the fill are read out in order);
  every entry is checked to be canonical (subscripts sorted in each group; a non-canonical write
  would be a bug of the compiler: status 3), split by face (the equality pattern of each group, as
  :mod:`systec_ref.storage.symmetric` stores them) and each face's compressed levels
  (:class:`~systec_ref.storage.csf.CSF`: ``pos``/``crd`` per level, then the values) written into
  one allocated block.

A hash table, not a dense row: the loops that produce the updates (SSYRK's ``k i j`` over a column of
``A`` at a time) reach the rows in no order, so the entries of a row are not finished before the next
row starts (a row-by-row order, Gustavson's, would need ``A`` read by rows and by columns in one nest).

The kernel's record argument (``int64_t *C``, :func:`record_length` slots) receives the block's address
and, per face in :func:`faces` order, its entry count and the address and length of each array;
:func:`read_record` copies them into numpy arrays (indices narrowed like every stored array) and
frees the block with the library's ``sx_free_<kernel>``.

Statuses: 0 done, 2 out of memory for the output's entries (the kernel's other failure, 1, is its
temporaries), 3 a non-canonical entry.
"""

from __future__ import annotations

import ctypes
import functools
import itertools

import numpy as np

from ..dtypes import element, identity
from ..errors import InternalError
from ..ir.nodes import Program, TensorInfo
from ..lang.names import generated
from ..storage.csf import CSF
from ..storage.faces import face_modes

#: slots the table starts with (a power of two): 768 KiB for a matrix of float64, so outputs of up to
#: 16384 entries never grow it (each growth rehashes every entry into fresh memory)
FIRST_CAPACITY = 32768


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


def record_length(order: int, groups: tuple[tuple[int, ...], ...]) -> int:
    """Slots of the record: the block's address, then per face its count, (pos, pos length, crd, crd length)
    per level, and the values' address."""
    return 1 + sum(2 + 4 * len(kept) for _, kept in faces(order, groups))


def names(t: TensorInfo) -> dict[str, str]:
    """The C names of output ``t``'s accumulator and helpers."""
    return {w: generated(w, t.name) for w in ("sparse", "acc", "put", "hash", "grow", "sort", "combine", "densify",
                                              "finish", "init")}


def free_name(kernel: str) -> str:
    """The exported function that frees a record's block: ``sx_free_<kernel>``."""
    return generated("free", kernel)


def put(t: TensorInfo, subs: list[str], value: str) -> str:
    """The statement that adds ``value`` at ``subs``."""
    n = names(t)
    return f"{n['put']}(&{n['acc']}, {', '.join(subs)}, {value});"


def init(t: TensorInfo, dims: list[str]) -> str:
    n = names(t)
    return f"{n['sparse']} {n['acc']}; if ({n['init']}(&{n['acc']}, {', '.join(dims)}))"


def _combine(p: Program, x: str, v: str) -> str:
    """C: ``x`` reduced with ``v`` (the kernel's reduction; same rules as the emitter's updates)."""
    if p.reduction == "+":
        if p.dtype == "int64":
            return f"{x} = (int64_t)((uint64_t){x} + (uint64_t){v});"
        return f"{x} += {v};"
    cmp = "<" if p.reduction == "min" else ">"
    return f"{x} = ({v} {cmp} {x}) ? {v} : {x};"


def helper(p: Program, t: TensorInfo, groups: tuple[tuple[int, ...], ...], fill: str) -> str:
    """The C of output ``t``'s accumulator (see the module's docstring); ``fill`` the C literal of its fill."""
    n = names(t)
    k, T = t.order, element(p.dtype).c_type
    row = ", ".join(f"int64_t s{q}" for q in range(k))
    store = " ".join(f"c[{q}] = s{q};" for q in range(k))
    same = " && ".join(f"c[{q}] == s{q}" for q in range(k))
    hash_steps = "".join(f"    h = (h ^ (uint64_t)s{q}) * 0x9E3779B97F4A7C15u;\n" for q in range(k))
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
    return f"""/* sparse output {t.name}: updates gathered as entries (see emit/sparse_out.py) */
typedef struct {{
    int64_t len, cap, failed;
    int64_t *crd;   /* len rows of {k} coordinates */
    {T} *val;
    {T} *dense;     /* once entries would take more memory: every element, row-major */
    int64_t d[{k}];
    int64_t size;   /* elements of the whole output; -1 if that overflows */
}} {n['sparse']};

static int {n['init']}({n['sparse']} *o, {", ".join(f"int64_t d{q}" for q in range(k))}) {{
    const int64_t d[{k}] = {{{", ".join(f"d{q}" for q in range(k))}}};
    o->len = 0; o->cap = {FIRST_CAPACITY}; o->failed = 0; o->dense = NULL; o->size = 1;
    for (int q = 0; q < {k}; ++q) {{
        o->d[q] = d[q];
        if (o->size >= 0 && d[q] > 0 && o->size > INT64_MAX / d[q]) o->size = -1;
        else if (o->size >= 0) o->size *= d[q];
    }}
    o->crd = malloc((size_t)o->cap * {k} * sizeof(int64_t));
    o->val = malloc((size_t)o->cap * sizeof({T}));
    if (!o->crd || !o->val) {{ free(o->crd); free(o->val); return 1; }}
    for (int64_t h = 0; h < o->cap; ++h) o->crd[h * {k}] = -1;  /* empty */
    return 0;
}}

static inline uint64_t {n['hash']}({row}) {{
    uint64_t h = 0x9E3779B97F4A7C15u;
{hash_steps}    h ^= h >> 30; h *= 0xBF58476D1CE4E5B9u; h ^= h >> 27; h *= 0x94D049BB133111EBu;  /* splitmix64's mix */
    return h ^ (h >> 31);
}}

/* sorts the entries by coordinates: LSD radix, 16-bit digits, the last mode first */
static int {n['sort']}({n['sparse']} *o) {{
    const int64_t len = o->len;
    if (len < 2) return 0;
    int64_t *c2 = malloc((size_t)len * {k} * sizeof(int64_t));
    {T} *v2 = malloc((size_t)len * sizeof({T}));
    int64_t *cnt = malloc(((size_t)65536 + 1) * sizeof(int64_t));
    if (!c2 || !v2 || !cnt) {{ free(c2); free(v2); free(cnt); return 1; }}
    for (int m = {k} - 1; m >= 0; --m) {{
        const int64_t hi = o->d[m] - 1;
        for (int shift = 0; shift < 63 && (hi >> shift) > 0; shift += 16) {{
            const int64_t top = hi >> shift, buckets = top < 65535 ? top + 1 : 65536;
            for (int64_t b = 0; b <= buckets; ++b) cnt[b] = 0;
            for (int64_t e = 0; e < len; ++e) cnt[((o->crd[e * {k} + m] >> shift) & 65535) + 1]++;
            for (int64_t b = 0; b < buckets; ++b) cnt[b + 1] += cnt[b];
            for (int64_t e = 0; e < len; ++e) {{
                const int64_t to = cnt[(o->crd[e * {k} + m] >> shift) & 65535]++;
                for (int q = 0; q < {k}; ++q) c2[to * {k} + q] = o->crd[e * {k} + q];
                v2[to] = o->val[e];
            }}
            int64_t *tc = o->crd; o->crd = c2; c2 = tc;
            {T} *tv = o->val; o->val = v2; v2 = tv;
        }}
    }}
    free(c2); free(v2); free(cnt);
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

/* the entries poured into a dense array of every element; later updates go there */
static int {n['densify']}({n['sparse']} *o) {{
    {T} *dense = malloc((size_t)o->size * sizeof({T}) + 1);
    if (!dense) return 1;
    for (int64_t x = 0; x < o->size; ++x) dense[x] = {fill};
    for (int64_t e = 0; e < o->cap; ++e) {{
        const int64_t *c = o->crd + e * {k};
        if (c[0] < 0) continue;
        int64_t off = c[0];
        for (int q = 1; q < {k}; ++q) off = off * o->d[q] + c[q];
        {_combine(p, "dense[off]", "o->val[e]")}
    }}
    free(o->crd); free(o->val);
    o->crd = NULL; o->val = NULL; o->len = o->cap = 0; o->dense = dense;
    return 0;
}}

/* the table is half full: twice the slots, or the dense array where that takes no more memory */
static void {n['grow']}({n['sparse']} *o) {{
    const int64_t cap = 2 * o->cap;
    if (o->size >= 0 && (double)cap * ({k} * sizeof(int64_t) + sizeof({T})) >= (double)o->size * sizeof({T})
        && {n['densify']}(o) == 0) return;
    int64_t *crd = malloc((size_t)cap * {k} * sizeof(int64_t));
    {T} *val = malloc((size_t)cap * sizeof({T}));
    if (!crd || !val) {{ free(crd); free(val); o->failed = 1; return; }}
    for (int64_t h = 0; h < cap; ++h) crd[h * {k}] = -1;
    for (int64_t e = 0; e < o->cap; ++e) {{
        const int64_t *c = o->crd + e * {k};
        if (c[0] < 0) continue;
        uint64_t h = {n['hash']}({", ".join(f"c[{q}]" for q in range(k))}) & (uint64_t)(cap - 1);
        while (crd[h * {k}] >= 0) h = (h + 1) & (uint64_t)(cap - 1);
        for (int q = 0; q < {k}; ++q) crd[h * {k} + q] = c[q];
        val[h] = o->val[e];
    }}
    free(o->crd); free(o->val);
    o->crd = crd; o->val = val; o->cap = cap;
}}

/* adds v at (s0, ...): into its entry of the table (open addressing, linear probing), a new one if none */
static inline void {n['put']}({n['sparse']} *o, {row}, {T} v) {{
{nan_skip}    if (o->dense) {{ {T} *x = &o->dense[{offset}]; {_combine(p, "*x", "v")} return; }}
    if (o->failed) return;
    const uint64_t mask = (uint64_t)(o->cap - 1);
    uint64_t h = {n['hash']}({", ".join(f"s{q}" for q in range(k))}) & mask;
    for (;; h = (h + 1) & mask) {{
        int64_t *c = o->crd + h * {k};
        if (c[0] < 0) {{
            {store}
            o->val[h] = v;
            if (++o->len * 2 > o->cap) {n['grow']}(o);
            return;
        }}
        if ({same}) {{ {_combine(p, "o->val[h]", "v")} return; }}
    }}
}}

/* the entries sorted, combined, checked canonical, split by face into compressed levels in one block:
   rec[0] its address; per face: entries, (pos, length, crd, length) per level, values */
static int {n['finish']}({n['sparse']} *o, int64_t *rec) {{
    static const int levels[{F}] = {{{levels}}};
    static const int kept[{F}][{k + 1}] = {{{kept_rows}}};
    if (o->failed) {{ free(o->crd); free(o->val); free(o->dense); return 2; }}
    if (o->dense) {{
        int64_t count = 0, c[{k}] = {{0}};
        for (int pass = 0; pass < 2; ++pass) {{
            if (pass == 1) {{
                o->crd = malloc((size_t)count * {k} * sizeof(int64_t) + 1);
                o->val = malloc((size_t)count * sizeof({T}) + 1);
                if (!o->crd || !o->val) {{ free(o->crd); free(o->val); free(o->dense); return 2; }}
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
        free(o->dense); o->dense = NULL;
    }} else {{
        int64_t w = 0;  /* the table's entries moved to its front */
        for (int64_t e = 0; e < o->cap; ++e) {{
            if (o->crd[e * {k}] < 0) continue;
            for (int q = 0; q < {k}; ++q) o->crd[w * {k} + q] = o->crd[e * {k} + q];
            o->val[w++] = o->val[e];
        }}
        o->len = w;
        if ({n['sort']}(o)) {{ free(o->crd); free(o->val); return 2; }}
        {n['combine']}(o);
    }}
    int64_t count[{F}] = {{0}};
    for (int64_t e = 0; e < o->len; ++e) {{
        const int64_t *c = o->crd + e * {k};
        if ({sorted_test}) {{ free(o->crd); free(o->val); return 3; }}
        count[{face_of}]++;
    }}
    size_t bytes = 0;
    for (int f = 0; f < {F}; ++f)
        bytes += (size_t)levels[f] * (2 * (size_t)count[f] + 2) * sizeof(int64_t)
                 + ((size_t)count[f] * sizeof({T}) + 7) / 8 * 8;
    char *block = malloc(bytes + 8);
    if (!block) {{ free(o->crd); free(o->val); return 2; }}
    rec[0] = (int64_t)(intptr_t)block;
    int64_t *slot = rec + 1;
    for (int f = 0; f < {F}; ++f) {{
        const int L = levels[f];
        int64_t *pos[{k}] = {{0}}, *crd[{k}] = {{0}}, n[{k}] = {{0}};
        {T} *val;
        for (int l = 0; l < L; ++l) {{
            pos[l] = (int64_t *)block; block += (l == 0 ? 2 : count[f] + 1) * sizeof(int64_t);
            crd[l] = (int64_t *)block; block += count[f] * sizeof(int64_t);
            n[l] = 0;
        }}
        val = ({T} *)block; block += ((size_t)count[f] * sizeof({T}) + 7) / 8 * 8;
        const int64_t *prev = NULL;
        int64_t nv = 0;
        if (L > 0) pos[0][0] = 0;
        for (int64_t e = 0; e < o->len; ++e) {{
            const int64_t *c = o->crd + e * {k};
            if ({face_of} != f) continue;
            int l = 0;  /* the first level where this entry leaves the previous one's fibers */
            if (prev) while (l < L - 1 && c[kept[f][l]] == prev[kept[f][l]]) ++l;
            for (int m = l; m < L; ++m) {{
                if (m > 0 && m > l) pos[m][n[m - 1] - 1] = n[m];  /* first child of the fiber just opened */
                crd[m][n[m]++] = c[kept[f][m]];
            }}
            val[nv++] = o->val[e];
            prev = c;
        }}
        if (L > 0) pos[0][1] = n[0];
        for (int l = 1; l < L; ++l) pos[l][n[l - 1]] = n[l];
        *slot++ = count[f];
        for (int l = 0; l < L; ++l) {{
            *slot++ = (int64_t)(intptr_t)pos[l]; *slot++ = l == 0 ? 2 : n[l - 1] + 1;
            *slot++ = (int64_t)(intptr_t)crd[l]; *slot++ = n[l];
        }}
        *slot++ = (int64_t)(intptr_t)val;
    }}
    free(o->crd); free(o->val);
    return 0;
}}"""


def read_record(p: Program, t: TensorInfo, groups: tuple[tuple[int, ...], ...], shape: tuple[int, ...],
                rec: np.ndarray, free) -> object:
    """The :class:`~systec_ref.storage.SparseTensor` a finished kernel's record describes (arrays copied,
    the block freed)."""
    from ..storage.symmetric import SparseTensor

    dtype = np.dtype(element(p.dtype).numpy)
    out: dict[tuple[int, ...], CSF] = {}
    at = 1
    slots = rec.tolist()
    # indices narrowed as every stored array is (storage/csf.py): coordinates by the extent, positions by
    # the face's entries
    crd_type = _index_type(max(shape) - 1)
    try:
        for key, kept in _faces(t.order, groups):
            count = slots[at]
            at += 1
            if not count:
                at += 4 * len(kept) + 1
                continue
            pos_type = _index_type(count)
            pos, crd = [], []
            for _ in kept:
                pos.append(_copy(slots[at], slots[at + 1], pos_type))
                crd.append(_copy(slots[at + 2], slots[at + 3], crd_type))
                at += 4
            vals = _copy(slots[at], count, dtype, dtype)
            at += 1
            out[key] = CSF(tuple(shape[m] for m in kept), tuple(pos), tuple(crd), vals)
    finally:
        free(ctypes.c_void_p(slots[0]))
    if at != len(rec):
        raise InternalError(f"sparse output {t.name}: read {at} slots of a record of {len(rec)}")
    fill = identity(p.reduction, p.dtype)
    return SparseTensor(tuple(int(s) for s in shape), groups, fill, dtype, out)


@functools.cache
def _faces(order: int, groups: tuple[tuple[int, ...], ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    return faces(order, groups)


def _index_type(high: int) -> np.dtype:
    return np.dtype(np.int32 if high <= np.iinfo(np.int32).max else np.int64)


_INT64 = np.dtype(np.int64)


def _copy(address: int, length: int, dtype: np.dtype, stored: np.dtype = _INT64) -> np.ndarray:
    """``length`` elements of type ``stored`` at ``address``, copied as ``dtype``."""
    if length == 0:
        return np.zeros(0, dtype=dtype)
    buf = (ctypes.c_char * (length * stored.itemsize)).from_address(address)
    return np.frombuffer(buf, dtype=stored).astype(dtype)
