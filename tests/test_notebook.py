"""Jupyter displays and a fast import: what a notebook user sees."""

from __future__ import annotations

import subprocess
import sys

from helpers import EXAMPLES_DIR, ROOT

import systec_ref
from systec_ref.viz.draw import have_dot


def test_a_kernel_and_its_stages_display_briefly():
    k = systec_ref.load(EXAMPLES_DIR / "ssymv.ein")
    page = k._repr_html_()
    assert "kernel ssymv" in page and "y[i] += A[i, j] * x[j]" in page
    assert all(s.name in page for s in k.stages) and "final loop nest" in page
    st = k.stage("restrict-iteration")
    assert repr(st) == "<Stage restrict-iteration: canonical triangle i <= j>"
    assert "for i in 0..n" in st._repr_html_()
    assert "(no change)" in repr(k.stage("sparse-iterate"))


def test_explain_view_shows_each_pass_and_draws_the_final_nest():
    k = systec_ref.load(EXAMPLES_DIR / "ssymv.ein")
    view = systec_ref.explain_view(k, {"n": 5})
    page = view._repr_html_()
    assert "every stage agrees with the definition" in page
    assert "restrict-iteration: canonical triangle i &lt;= j" in page
    assert '<span class="add">+' in page  # a text diff per pass
    assert ("<svg" in page) == have_dot()
    assert "every stage agrees with the definition: True" in str(view)


def test_import_is_light():
    """Importing the package loads neither the drawing, table nor sparse libraries: they load on use."""
    code = ("import sys, systec_ref\n"
            "print(sorted(m for m in ('networkx', 'rich', 'scipy', 'matplotlib', 'sparse') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
