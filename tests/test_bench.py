"""The benchmark command runs and writes a valid results.json (no speed is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "systec_ref", "bench", "--quick", "--repeats", "1", "--suite", "dense",
                        "--kernel", "ssymv", "mttkrp3", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600,
                       env={**os.environ, "SYSTEC_REF_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    assert {c["kernel"] for c in doc["cases"]} == {"ssymv", "mttkrp3"}
    for case in doc["cases"]:
        res = case["results"]
        assert "systec_ref (symmetric)" in res and "systec_ref (symmetry off)" in res and len(res) >= 4
        for v in res.values():
            assert v["agrees"] is True
            assert v["min_s"] <= v["median_s"] <= v["max_s"] and v["repeats"] == 1
    assert doc["machine"]["compiler"] and doc["machine"]["cpu"]


def test_bench_unknown_kernel_is_a_clear_error(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "systec_ref", "bench", "--quick", "--kernel", "nope", "--out",
                        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no benchmark named nope" in r.stderr and "Traceback" not in r.stderr


def test_sparse_bench_quick_reports_memory_and_setup(tmp_path: Path) -> None:
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "systec_ref", "bench", "--quick", "--repeats", "1", "--suite", "sparse",
                        "--kernel", "ssymv/bar", "mttkrp3/random-d0.1", "bellman/les_miserables_graph", "--out",
                        str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "SYSTEC_REF_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    assert [c["kernel"] for c in doc["cases"]] == ["ssymv/bar", "bellman/les_miserables_graph",
                                                   "mttkrp3/random-d0.1"]
    for case in doc["cases"]:
        assert case["suite"] == "sparse"
        assert all(v["agrees"] is True for v in case["results"].values())
        mem = case["memory"]
        assert 0 < mem["canonical bytes"] < mem["full storage bytes"]
        assert mem["stored canonical"] < mem["stored full"]
        assert set(case["setup_s"]) >= {"make input", "to full storage (baseline)"}
    bar = doc["cases"][0]
    assert "scipy CSR A @ x" in bar["results"] and bar["memory"]["scipy CSR bytes"] > 0


@pytest.mark.slow
def test_whole_quick_suite_runs_and_writes_results_and_plot(tmp_path: Path) -> None:
    """What the README's benchmark command does, at quick sizes: every case runs, every implementation agrees
    with the others, results.json is complete and the plot is written (no speed is asserted)."""
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "systec_ref", "bench", "--quick", "--repeats", "1", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "SYSTEC_REF_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    from systec_ref.bench import dense, sparse

    assert len(doc["cases"]) == len(dense.CASES) + len(sparse.CASES)
    for case in doc["cases"]:
        assert case["suite"] in ("dense", "sparse")
        for name, v in case["results"].items():
            assert v["agrees"] is True, (case["kernel"], name)
            assert v["min_s"] <= v["median_s"] <= v["max_s"] and v["repeats"] == 1
    libs = doc["machine"]["libraries"]
    assert libs["numpy"] != "not installed" and "threads" in doc["machine"]
    if libs["matplotlib"] != "not installed":
        assert (out / "speedup.png").stat().st_size > 10_000
