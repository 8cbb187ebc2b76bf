"""Which names a kernel may use, so that every accepted name reaches C as itself.

A kernel, tensor, dimension or index name of ``.ein`` becomes a C identifier unchanged (the
generated C stays readable: ``y[i] += A_f0_vals[_q1] * x[j]``).  So a name must not mean something
else to the C compiler or clash with a name the compiler generates.  The rules are fixed here, for
every machine alike (a kernel valid on one machine is valid on all), rather than discovered from
one machine's headers:

* C keywords, of C99 and of later standards and common extensions (``typeof``, ``asm``);
* what the headers the generated C includes (``math.h``, ``stddef.h``, ``stdint.h``,
  ``stdlib.h``) define as macros or types, and the library functions it calls
  (``malloc``, ``free``): by the names C99 itself gives them and by the families C99 reserves for
  them (``INT…_MAX``, ``FP_…``) — ``tests/test_names.py`` checks this list against the macros the
  installed headers actually define;
* the prefix ``sx_`` (any case): the generated C's own locals and macros (``sx_i``, ``SX_OPAQUE``);
* a stored face of a sparse tensor ``A`` reaches C as one array per array of its storage format
  (:mod:`systec_ref.storage.formats`), named ``<face>_<array>``: ``A_f0_1_pos0``, ``A_f0_1_crd0``,
  ``A_f0_1_vals`` for CSF (``A_full_…`` for full storage): other names of the kernel may not take the
  form of an array of any registered format.

This module also *makes* every name the generated C adds to the kernel's own: the function
(:func:`function_name`), the face arrays (:func:`face_array`) and the ``sx_`` locals, helpers
and macros (:func:`generated`, :data:`IVDEP`, :data:`OPAQUE`) — so the rules above and the names
they keep free come from one place.
"""

from __future__ import annotations

import re

from ..storage import formats
from ..storage.formats import Array

#: C keywords (C99, C11, C23) and extensions that compilers treat as keywords in some modes.
C_KEYWORDS = frozenset(
    """auto break case char const continue default do double else enum extern float for
    goto if inline int long register restrict return short signed sizeof static struct
    switch typedef union unsigned void volatile while _Bool _Complex _Imaginary
    alignas alignof bool constexpr false nullptr static_assert thread_local true typeof typeof_unqual
    asm fortran""".split()
)

#: Names the included headers define (C99 7.12 math.h, 7.17 stddef.h, 7.18 stdint.h, 7.20 stdlib.h,
#: and the POSIX/GNU additions of common C libraries), and what the generated C calls.
C_LIBRARY = frozenset(
    """NULL offsetof size_t ptrdiff_t wchar_t max_align_t
    int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t intptr_t uintptr_t intmax_t uintmax_t
    int_least8_t int_least16_t int_least32_t int_least64_t uint_least8_t uint_least16_t uint_least32_t
    uint_least64_t int_fast8_t int_fast16_t int_fast32_t int_fast64_t uint_fast8_t uint_fast16_t
    uint_fast32_t uint_fast64_t
    SIZE_MAX PTRDIFF_MIN PTRDIFF_MAX SIG_ATOMIC_MIN SIG_ATOMIC_MAX WCHAR_MIN WCHAR_MAX WINT_MIN WINT_MAX
    INFINITY NAN HUGE_VAL HUGE_VALF HUGE_VALL math_errhandling MATH_ERRNO MATH_ERREXCEPT
    fpclassify isfinite isinf isnan isnormal signbit isgreater isgreaterequal isless islessequal
    islessgreater isunordered float_t double_t
    M_E M_LOG2E M_LOG10E M_LN2 M_LN10 M_PI M_PI_2 M_PI_4 M_1_PI M_2_PI M_2_SQRTPI M_SQRT2 M_SQRT1_2
    EXIT_FAILURE EXIT_SUCCESS RAND_MAX MB_CUR_MAX div_t ldiv_t lldiv_t
    malloc calloc realloc free abort exit main
    INT64_C INTMAX_C UINT64_C UINTMAX_C""".split()
)

#: Macro families C99 reserves for its headers (7.26 "future library directions"), and the
#: generated C's own prefix.
_RESERVED_FORMS = (
    (re.compile(r"U?INT\w*_(MAX|MIN|C)\Z"), "INT…_MAX, _MIN and _C are the C library's integer limits"),
    (re.compile(r"FP_[A-Z]\w*\Z"), "FP_… are the C library's floating-point classes"),
    (re.compile(r"[Ss][Xx]_"), "names beginning with sx_ are the generated C's own"),
)


def c_conflict(name: str) -> str | None:
    """Why ``name`` cannot reach C as itself (None: it can)."""
    if name in C_KEYWORDS:
        return "a C keyword"
    if name in C_LIBRARY:
        return "a name the C headers of the generated code define, or a function it calls"
    return next((why for form, why in _RESERVED_FORMS if form.match(name)), None)


def face_arrays(tensor: str) -> re.Pattern[str]:
    """The names the C of a kernel may give the stored faces of sparse ``tensor`` under any registered
    storage format: the faces (``A_f0_1``, ``A_full``) and their arrays (CSF: ``A_f0_1_pos0``,
    ``A_f0_1_crd0``, ``A_f0_1_vals``, ``A_full_…``)."""
    arrays = "|".join(dict.fromkeys(p for fmt in formats.registered() for p in fmt.array_patterns()))
    return re.compile(re.escape(tensor) + r"_(full|f\d+(_\d+)*)(_(" + arrays + r"))?\Z")


# -- the names the generated C makes ---------------------------------------------------------

#: the prefix of every kernel function: ``systec_<kernel>``
FUNCTION_PREFIX = "systec_"
#: the prefix of the generated C's own locals and helpers (kept off kernel names by ``_RESERVED_FORMS``)
GENERATED_PREFIX = "sx_"
#: the generated C's macros: "iterations touch disjoint elements", "hide this loop bound from the optimizer"
IVDEP, OPAQUE = "SX_IVDEP", "SX_OPAQUE"


def function_name(kernel: str) -> str:
    return FUNCTION_PREFIX + kernel


def generated(*parts: object) -> str:
    """A name of the generated C's own: ``sx_`` then ``parts`` joined by ``_`` (``generated("end", "i")``
    is ``sx_end_i``), never a name of the kernel."""
    return GENERATED_PREFIX + "_".join(map(str, parts))


def face_name(tensor: str, face: tuple[int, ...]) -> str:
    """The C name of one stored face of sparse ``tensor``: ``A_f0_1`` (one equality mask per symmetry
    group), ``A_full`` for full storage."""
    return f"{tensor}_" + ("full" if not face else "f" + "_".join(map(str, face)))


def face_array(tensor: str, face: tuple[int, ...], array: Array) -> str:
    """The C name of one array of a stored face, as its storage format names it: ``A_f0_1_pos0``."""
    return f"{face_name(tensor, face)}_{array.name}"
