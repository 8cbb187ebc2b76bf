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
# # 3. `normalize` and `group-assignments`: identical updates merge
#
# After `define-assignments`, a block holds every distinct rearrangement of the statement. Many of
# them are the *same* update written differently: `x[i]*A[i,j]*x[j]` and `x[j]*A[j,i]*x[i]` are
# equal once you know that `A` is symmetric and `*` commutes. `normalize` gives equal expressions
# one spelling; `group-assignments` then merges identical updates. How they merge depends on the
# reduction: for `+`, two copies are one update times 2; for the *idempotent* `min` and `max`, two
# copies are just one update. We finish with a real use of `min=`: Bellman-Ford on a graph.

# %%
import networkx as nx
import numpy as np
import tutorials_support as ts
from scipy.sparse.csgraph import dijkstra

import systec_ref

syprd = systec_ref.load(ts.EXAMPLES / "syprd.ein")
ts.show_source(ts.EXAMPLES / "syprd.ein")
n = 6
inputs = syprd.random_inputs({"n": n}, seed=0)

# %% [markdown]
# ## normalize
#
# Three rewrites, all meaning-preserving: the subscripts of a symmetric read are sorted within its
# symmetry group (so only the canonical triangle is read — tutorial 1); inside a pattern block,
# equal variables are spelled by one representative; `+` and `*` are flattened, constants folded
# into one leading factor and operands sorted by a fixed key. After it, the two updates of the
# strict block `i < j` are *character for character* the same:

# %%
ts.show_pass(syprd, "define-assignments", draw=False)

# %%
ts.show_pass(syprd, "normalize")

# %% [markdown]
# ## group-assignments with `+`
#
# In each run of consecutive updates of one block, `a*X; b*X` becomes `(a+b)*X`. For SYPRD the
# strict block's two copies become one update with the factor 2:

# %%
ts.show_pass(syprd, "group-assignments")

# %% [markdown]
# The interpreter counts the saving: before grouping, one update per point of the full square;
# after, one per point of the canonical triangle — with a multiplication by the constant 2 added to
# each strict update.

# %%
report = ts.verify(syprd, inputs)
ts.counts_table(report, ["lower", "normalize", "group-assignments"])
before, after = ts.stage_counts(report, "normalize"), ts.stage_counts(report, "group-assignments")
print(f"\nupdates: {before.updates} -> {after.updates};  mults: {before.mults} -> {after.mults}")
assert before.updates == n * n and after.updates == n * (n + 1) // 2
strict_points = n * (n - 1) // 2
# each strict update had 2 mults and gains one (the factor); n*n - 2*strict_points updates are diagonal
assert after.mults == 3 * strict_points + 2 * n

# %% [markdown]
# ## group-assignments with `min`: idempotent
#
# The same quadratic form in the min-plus semiring: `s = min over i,j of x[i] + A[i,j] + x[j]`.
# Its strict block also holds two identical updates. But `min(min(s, X), X) = min(s, X)`: a repeated
# update is simply dropped — `2*X` would be wrong (it is not even the same kind of number).

# %%
minq = systec_ref.compile("""
kernel minq
in  A[n, n]  symmetric
in  x[n]
out s
s min= x[i] + A[i, j] + x[j]
""")
ts.show_pass(minq, "group-assignments")
report_min = ts.verify(minq, minq.random_inputs({"n": n}, seed=0))
ts.counts_table(report_min, ["lower", "normalize", "group-assignments"])
bmin, amin = ts.stage_counts(report_min, "normalize"), ts.stage_counts(report_min, "group-assignments")
assert bmin.updates == n * n and amin.updates == n * (n + 1) // 2
assert amin.mults == 0  # no factor: min is idempotent

# %% [markdown]
# ## Bellman-Ford: when nothing merges
#
# One relaxation step of Bellman-Ford on an undirected weighted graph is
# `y[i] min= A[i,j] + x[j]`, with `A` sparse and `+∞` where there is no edge:

# %%
bellman = systec_ref.load(ts.EXAMPLES / "bellman.ein")
ts.show_source(ts.EXAMPLES / "bellman.ein")

# %% [markdown]
# Here the two updates of the strict block write *different* outputs (`y[i]` and `y[j]`), so
# `normalize` makes their reads of `A` canonical but `group-assignments` has nothing to merge. The
# saving of symmetry here is in reading `A`: each stored edge is read once and relaxes both of its
# endpoints.

# %%
ts.show_pass(bellman, "normalize")
print()
print(f"group-assignments: {bellman.stage('group-assignments').note}")

# %% [markdown]
# Now run it on a real graph: Zachary's karate club (bundled with `networkx`), with integer edge
# weights made up from the endpoints, and zero on the diagonal (staying put costs nothing). Starting
# from distance 0 at node 0 and `+∞` elsewhere, we repeat the step until nothing changes, and
# compare with `scipy`'s Dijkstra.

# %%
G = nx.karate_club_graph()
nodes = sorted(G)
N = len(nodes)
W = np.full((N, N), np.inf)
for u, v in G.edges():
    W[u, v] = W[v, u] = 1 + (u * v) % 5
np.fill_diagonal(W, 0.0)

dist = np.full(N, np.inf)
dist[0] = 0.0
steps = 0
while True:
    new = bellman.run(A=W, x=dist)
    steps += 1
    if np.array_equal(new, dist):
        break
    dist = new
reference = dijkstra(np.where(np.isinf(W), 0, W), directed=False, indices=0)
print(f"{N} nodes, {G.number_of_edges()} edges: converged after {steps} steps")
print("distances from node 0:", dist.astype(int).tolist())
print("equal to scipy's Dijkstra:", bool(np.array_equal(dist, reference)))
assert np.array_equal(dist, reference)

# %% [markdown]
# What one step costs, naive nest against the final one (both in the interpreter, on this graph).
# `adds` counts the `A[i,j] + x[j]` of the relaxation; the final nest iterates only the stored
# canonical entries of `A` (tutorial 9), each relaxing two nodes:

# %%
start = {"A": W, "x": np.where(np.arange(N) == 0, 0.0, np.inf)}
report_bf = ts.verify(bellman, start, label="bellman on the karate club")
ts.counts_table(report_bf, ["lower", "group-assignments", "sparse-iterate", "unroll-and-jam"])
c_naive, c_final = report_bf.stages[0].counts, report_bf.stages[-1].counts
edges, diag = G.number_of_edges(), N
print(f"\nreads of A per step: naive {c_naive.reads['A']} (= N^2), final {c_final.reads['A']} "
      f"(= edges + diagonal = {edges} + {diag})")
assert c_naive.reads["A"] == N * N and c_final.reads["A"] == edges + diag
assert c_final.adds == 2 * edges + diag

# %% [markdown]
# ## Exercise
#
# `examples/widest.ein` is a `max=` kernel (`y[i] max= W[i,j] + d[j]`, integers). Predict what
# `group-assignments` does to it, and to the scalar `s max= d[i] + W[i,j] + d[j]` (write it with
# `systec_ref.compile`). Check with `ts.show_pass(kernel, "group-assignments")` and with the
# `updates` of `systec_ref.check(kernel, kernel.random_inputs({"n": 6})).stages`.
