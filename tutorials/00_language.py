# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 0. The language and the interpreter
#
# `systec_ref` compiles one-line tensor kernels written in a small einsum language into loop
# nests. Before any optimization, this tutorial shows the three things every later one relies on:
#
# 1. what a kernel **means** (the definition the interpreter implements literally);
# 2. how to **run** it — by its definition, as a naive loop nest, as the optimized loop nest;
# 3. the **operation counts** the interpreter reports, which are how every later tutorial proves
#    that a pass saved work.
#
# Every number in this document is printed by the code above it; none is typed by hand.

# %%
import numpy as np
import tutorials_support as ts

import systec_ref

# %% [markdown]
# ## A kernel
#
# A `.ein` file declares its tensors (`in`/`out`, dimensions by name, `symmetric`, `sparse`, an
# element type) and holds **one** assignment. Here is SSYMV, a symmetric matrix times a vector:

# %%
ts.show_source(ts.EXAMPLES / "ssymv.ein")

# %% [markdown]
# `systec_ref.load(path)` reads a file; `systec_ref.compile(text)` takes the text itself. Both
# parse and check the kernel and give a `Kernel`, whose compiled programs are computed on demand.

# %%
k = systec_ref.load(ts.EXAMPLES / "ssymv.ein")
print("kernel:", k.name)
for d in k.ast.decls:
    print(f"  {d.role:<3} {d.name}{list(d.dims)}  symmetry={d.symmetry}  format={d.format}  dtype={d.dtype}")
print("assignment:", k.ast.assignment.reduction, "reduction")

# %% [markdown]
# ## What a kernel means
#
# The meaning is one sentence: **the output starts at the identity of the reduction** (0 for `+=`,
# +∞ for `min=`, −∞ for `max=`); **then, for every point of the full index space, `lhs op= rhs`.**
# An index on the right that is not on the left (here `j`) is therefore reduced with the
# assignment's operator. `=` means `+=` into a freshly zeroed output.
#
# Written out in Python for SSYMV, that sentence is the five lines below. `Kernel.definition`
# evaluates exactly this (no loop nest, no pass), and we check that the two agree.

# %%
n = 8  # (SSYMV's default size: every nest of every stage runs, the six-row sweeps included)
inputs = k.random_inputs({"n": n}, seed=0)  # A is exactly symmetric, as declared
A, x = inputs["A"], inputs["x"]

y = np.zeros(n)                      # the identity of +
for i in range(n):                   # every point (i, j) of the full index space
    for j in range(n):
        y[i] += A[i, j] * x[j]       # lhs op= rhs

by_definition = k.definition(inputs).value
print("by hand and by definition agree:", bool(systec_ref.agree(y, by_definition, "float64")))

# %% [markdown]
# The same kernel with `min=` instead of `+=` is one step of a shortest-path relaxation
# (tutorial 3 runs it on a graph). Its output starts at +∞, so an output element that receives no
# update at all stays +∞ — which we can see by giving the reduced dimension `m` the size 0. With
# `+=`, the same empty reduction leaves 0.

# %%
text = """
kernel relax
in  A[n, m]
in  x[m]
out y[n]
y[i] {op} A[i, j] + x[j]
"""
for op in ("min=", "+=", "max="):
    kk = systec_ref.compile(text.format(op=op))
    empty = kk.definition({"A": np.zeros((3, 0)), "x": np.zeros(0)}).value
    small = kk.definition({"A": np.array([[1.0, 5.0], [2.0, 0.0], [7.0, 3.0]]), "x": np.array([10.0, 20.0])}).value
    print(f"{op:<5} with m = 0: y = {empty}    with m = 2: y = {small}")

# %% [markdown]
# ## Running it
#
# `Kernel.run` computes the output: by default the **final, optimized** loop nest in the
# interpreter; `optimize=False` runs the naive nest; `backend="c"` runs the generated C
# (tutorial 10). `Kernel.interpret` runs one stage and also returns its operation counts.

# %%
y_opt = k.run(A=A, x=x)
y_naive = k.run(A=A, x=x, optimize=False)
print("optimized == definition:", bool(systec_ref.agree(y_opt, by_definition, "float64")))
print("naive     == definition:", bool(systec_ref.agree(y_naive, by_definition, "float64")))

# %% [markdown]
# ## Operation counts
#
# The interpreter counts what a program does: `mults` and `adds` in right-hand sides, `updates`
# (executions of `T[...] op= e`), `reads[T]` (element reads of `T`), `distinct[T]` (how many
# *different* elements of `T` were read) and `iterations` (loop-body executions). The counts of the
# definition and of the naive nest are those of the full index space: one update, one
# multiplication and one read of `A` per point.

# %%
c_def = k.definition(inputs).counts
c_naive = k.interpret(inputs, stage="lower").counts
c_final = k.interpret(inputs).counts
print(ts.table(["program", *ts.COUNT_HEADERS],
               [["definition", *ts.counts_row(c_def)],
                ["naive nest (lower)", *ts.counts_row(c_naive)],
                ["optimized nest (final)", *ts.counts_row(c_final)]]))
assert c_def.mults == c_def.updates == c_def.reads["A"] == n * n
assert c_naive.mults == c_naive.updates == c_naive.reads["A"] == n * n
print(f"\nnaive: {c_naive.reads['A']} reads of A = n*n for n = {n}; "
      f"optimized: {c_final.reads['A']} reads of A = n*(n+1)/2 = {n * (n + 1) // 2}")
assert c_final.reads["A"] == c_final.distinct["A"] == n * (n + 1) // 2 and c_final.mults == n * n

# %% [markdown]
# The optimized nest reads only the upper triangle of `A`, once per element, and still does one
# multiplication per point of the full space (tutorial 1 explains both). Where the savings of
# the other passes appear is the subject of tutorials 2–7.
#
# ## Stages
#
# Compiling is a sequence of named programs: `lower` (the naive nest) and then one stage per pass,
# each a program that the same interpreter runs. `Kernel.stages` lists them; each stage says
# whether its pass changed the program and what it did (or why it did not apply).

# %%
print(ts.table(["#", "stage", "changed", "note"],
               [[n_, s.name, "yes" if s.changed else "no", s.note] for n_, s in enumerate(k.stages)]))

# %% [markdown]
# `lower` builds the naive loop nest: one loop per index variable, in the loop order (here the
# order of the subscripts; an `order` line in the file can choose another), around the
# assignment.

# %%
ts.show(k, "lower", header=True)

# %% [markdown]
# ## concordize: reads that follow the loop order
#
# The first pass that changes this kernel, `concordize`, makes every read of a **non-symmetric**
# input walk memory in loop order. SSYMV needs nothing (its note above says so). SSYRK (`C = A Aᵀ`) with the loop order
# `k j i` reads `A[i,k]` with its *first* subscript innermost; `concordize` makes a transposed copy
# `A_T` that the program itself builds, so the copy is part of what the interpreter checks and of
# the C. (A symmetric tensor is never copied: tutorial 1 shows that its subscripts get sorted
# instead.)

# %%
ssyrk_kji = systec_ref.compile("""
kernel ssyrk_kji
in  A[n, m]
out C[n, n]
order k j i
C[i, j] += A[i, k] * A[j, k]
""")
ts.show_pass(ssyrk_kji, "concordize", header=True)

# %% [markdown]
# Every stage is checked the same way: run in the interpreter, compared with the stage before it
# and with the definition (`systec_ref.check`). The copy costs `copies` — one per element of `A` —
# and nothing else changes in the arithmetic.

# %%
report = ts.verify(ssyrk_kji, ssyrk_kji.random_inputs({"n": 4, "m": 3}, seed=1))
ts.counts_table(report, ["lower", "concordize"])
c_copy = ts.stage_counts(report, "concordize")
print("copies made by concordize:", c_copy.copies, "= n*m =", 4 * 3)
assert c_copy.copies == 4 * 3

# %% [markdown]
# ## When the text is wrong
#
# A malformed kernel never gives a Python traceback: it raises `systec_ref.SourceError` with one
# located message (file, line, column, the line itself and a caret).

# %%
try:
    systec_ref.compile("kernel bad\nin A[n, n] symmetric\nin x[n]\nout y[n]\ny[i] += A[i, j] * z[j]\n")
except systec_ref.SourceError as e:
    print(e)

# %% [markdown]
# ## Exercise
#
# Write SYPRD, the quadratic form `s = xᵀ A x`, as a kernel string (a scalar output is declared
# `out s`, without brackets) and predict how many multiplications its naive nest does for `n = 7`
# and how many its optimized nest does. Check your predictions with
#
# ```python
# kk = systec_ref.compile(text)
# inp = kk.random_inputs({"n": 7})
# print(kk.interpret(inp, stage="lower").counts.mults, kk.interpret(inp).counts.mults)
# ```
#
# (`examples/syprd.ein` is one answer; tutorial 3 explains the second number.)
