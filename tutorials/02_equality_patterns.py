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
# # 2. `define-assignments` and equality patterns (MTTKRP-3)
#
# MTTKRP of a symmetric 3-tensor, `C[i,j] += A[i,k,l] * B[l,j] * B[k,j]`. Three variables
# `(i,k,l)` run over the same extent and sit at the symmetric positions of `A`, so they form one
# permutable set. Their canonical triangle is now a *simplex* `i ≤ k ≤ l`, and it has faces: the
# strict interior and the diagonal faces where neighbours are equal. This tutorial counts the faces,
# the distinct rearrangements of each, and the multiplicity of each update — first by hand, then
# as the compiler does it — and checks that the two agree.

# %%
import itertools
import math
from collections import Counter

import networkx as nx
import tutorials_support as ts

import systec_ref
from systec_ref.ir.graph import to_graph
from systec_ref.ir.nodes import Const, Mul, Read

ts.show_source(ts.EXAMPLES / "mttkrp3.ein")
# blas=False: the passes of the paper on A's whole symmetric set (with BLAS calls on, `gemm-form`
# first keeps only the part of it that makes matrix products: tutorial 10)
k = systec_ref.load(ts.EXAMPLES / "mttkrp3.ein", blas=False)
n, r = 5, 2
inputs = k.random_inputs({"n": n, "r": r}, seed=0)

# %% [markdown]
# ## Faces of the simplex
#
# For sorted `p1 ≤ p2 ≤ … ≤ pk`, each adjacent pair is either `<` or `==`: `2^(k-1)` **equality
# patterns**. For `(i,k,l)` that is four: `i<k<l` (the strict part, almost every point), `i<k==l`,
# `i==k<l` and `i==k==l`. Here are the canonical points of `n = 5`, sorted into their faces:

# %%
names = ("i", "k", "l")


def pattern(p):
    """The equality pattern of a sorted point, spelled with the variable names."""
    out = names[0]
    for t in range(1, len(p)):
        out += (" == " if p[t] == p[t - 1] else " < ") + names[t]
    return out


canonical = [p for p in itertools.product(range(n), repeat=3) if p[0] <= p[1] <= p[2]]
faces = Counter(pattern(p) for p in canonical)
closed_form = {"i < k < l": math.comb(n, 3), "i < k == l": math.comb(n, 2), "i == k < l": math.comb(n, 2),
               "i == k == l": n}
print(ts.table(["face", "canonical points", "closed form"],
               [[f, faces[f], closed_form[f]] for f in closed_form]))
assert dict(faces) == closed_form and len(faces) == 2 ** (3 - 1)

# %% [markdown]
# ## Distinct rearrangements
#
# A point whose sorted coordinates fall into runs of equal values of sizes `r1, r2, …` has
# `k!/(r1!·r2!·…)` distinct rearrangements. Counting them directly with `itertools` gives the same,
# and summing *points × rearrangements* over the faces gives back the whole cube `n³` — the identity
# of tutorial 1, now with four faces instead of two:

# %%
rows, total = [], 0
for f in closed_form:
    point = next(p for p in canonical if pattern(p) == f)
    distinct = len(set(itertools.permutations(point)))
    runs = [len(list(g)) for _, g in itertools.groupby(point)]
    formula = math.factorial(3) // math.prod(math.factorial(x) for x in runs)
    assert distinct == formula
    rows.append([f, str(point), distinct, formula])
    total += faces[f] * distinct
by_hand = {row[0]: row[2] for row in rows}
print(ts.table(["face", "example point", "distinct rearrangements", "k!/prod(r!)"], rows))
print(f"\nsum over faces of points x rearrangements = {total} = n^3 = {n ** 3}")
assert total == n ** 3

# %% [markdown]
# ## define-assignments
#
# The compiler does the same. After `restrict-iteration` (tutorial 1), `define-assignments`
# replaces the "for each distinct rearrangement" node by one branch per equality pattern, holding
# each distinct rearrangement of the whole statement, left-hand side included, with equal variables
# spelled by one representative (`A[i,k,k]` on the face `k == l`).

# %%
ts.show_pass(k, "define-assignments")

# %% [markdown]
# Each branch is a block whose comment names its pattern; counting the assignments in each block
# of the compiled program gives the compiler's rearrangements, which we compare with ours:

# %%
g = to_graph(k.stage("define-assignments").program)
by_compiler = {}
for node, data in g.nodes(data=True):
    if data["kind"] == "block" and data["label"].startswith("pattern "):
        face = data["label"].removeprefix("pattern ").split(":")[0]
        by_compiler[face] = sum(g.nodes[d]["kind"] == "assign" for d in nx.descendants(g, node))
print(ts.table(["face", "by hand", "by the compiler"], [[f, by_hand[f], by_compiler[f]] for f in by_hand]))
assert by_compiler == by_hand

# %% [markdown]
# Nothing has been saved yet — the updates are those of the full cube, and the interpreter agrees
# with the definition at every stage:

# %%
report = ts.verify(k, inputs)
ts.counts_table(report, ["lower", "restrict-iteration", "define-assignments", "normalize", "group-assignments"])
assert ts.stage_counts(report, "define-assignments").updates == n ** 3 * r

# %% [markdown]
# ## Multiplicities
#
# Once `normalize` has sorted every read of `A` into the canonical triangle (tutorial 3), many
# rearranged updates become *the same* update: in the strict block, `C[i,j]` receives
# `A[i,k,l]·B[k,j]·B[l,j]` from both `(i,k,l)` and `(i,l,k)`. How many copies of each update are
# there? By hand: apply every distinct rearrangement of a face's point to the statement and count
# the resulting (output row, factor rows) pairs. In an order-k MTTKRP the strict block gives each
# update `(k-1)!` copies.


# %%
def multiplicities_by_hand(face):
    """{(output row, factor rows): copies} for one face, spelled with representative variables."""
    rep = list(names)
    for t, rel in enumerate(face.split()[1::2]):
        if rel == "==":
            rep[t + 1] = rep[t]
    out = Counter()
    for a, b, c in set(itertools.permutations(rep)):  # (i, k, l) -> (a, b, c)
        out[(a, tuple(sorted((c, b))))] += 1  # C[a,j] += A[...] * B[c,j] * B[b,j]
    return dict(out)


def factors(e):
    """Flatten a product into its factors."""
    return [f for a in e.args for f in factors(a)] if isinstance(e, Mul) else [e]


def multiplicities_by_compiler(stage):
    """{face: {(output row, factor rows): factor}} from the updates of a compiled stage."""
    out = {}
    for face, update in ts.updates(k.stage(stage).program):
        fs = factors(update.value)
        const = math.prod(f.value for f in fs if isinstance(f, Const))
        rows_ = tuple(sorted(f.idx[0].name for f in fs if isinstance(f, Read) and f.tensor == "B"))
        key = (update.target.idx[0].name, rows_)
        out.setdefault(face, Counter())[key] += const
    return {f: dict(c) for f, c in out.items()}


compiled = multiplicities_by_compiler("group-assignments")
rows = []
for f in closed_form:
    hand = multiplicities_by_hand(f)
    assert compiled[f] == hand, (f, compiled[f], hand)
    for (row, brows), copies in sorted(hand.items()):
        update = f"C[{row},j] += A * " + " * ".join(f"B[{b},j]" for b in brows)
        rows.append([f, update, copies, compiled[f][(row, brows)]])
print(ts.table(["face", "update", "copies by hand", "factor by the compiler"], rows))
strict = multiplicities_by_hand("i < k < l")
assert set(strict.values()) == {math.factorial(3 - 1)}

# %% [markdown]
# The compiler's factors are those of `group-assignments` (next tutorial), which merges the copies
# into one update with a factor; they are the factors of the worked MTTKRP-3 example of the SySTeC paper.
# Here is the whole program at that stage:

# %%
ts.show(k, "group-assignments")

# %% [markdown]
# ## Exercise
#
# MTTKRP-4 (`examples/mttkrp4.ein`) has a set of four variables `(i,k,l,m)`. How many equality
# patterns does it have, and how many distinct rearrangements does the face `i < k == l < m` have?
# Work it out with `k!/(r1!·r2!·…)`, then check against the compiler:
# `systec_ref.load("examples/mttkrp4.ein").stage("define-assignments").note` and the block comments
# printed by `ts.show(kernel, "define-assignments")`.
