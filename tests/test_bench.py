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
                        "--kernel", "ssymv/bar", "mttkrp3/random-d0.1", "bellman/les_miserables_graph",
                        "syprd/poisson2d", "ssyrk/poisson2d", "--out", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env={**os.environ, "SYSTEC_REF_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    cases = {c["kernel"]: c for c in doc["cases"]}
    assert list(cases) == ["ssymv/bar", "syprd/poisson2d", "bellman/les_miserables_graph", "mttkrp3/random-d0.1",
                           "ssyrk/poisson2d"]
    for name, case in cases.items():
        assert case["suite"] == "sparse"
        assert all(v["agrees"] is True for v in case["results"].values())
        mem = case["memory"]
        assert 0 < mem["canonical bytes"] <= mem["full storage bytes"]
        assert mem["systec_ref (symmetric): operands bytes"] > 0 and mem["systec_ref: output bytes"] > 0
        if not name.startswith("ssyrk"):
            assert mem["canonical bytes"] < mem["full storage bytes"]
            assert mem["stored canonical"] < mem["stored full"]
        assert set(case["setup_s"]) >= {"make input", "to full storage (baseline)"}
    bar = cases["ssymv/bar"]
    assert "scipy CSR A @ x" in bar["results"] and bar["memory"]["scipy CSR bytes"] > 0


def test_sparse_bench_reports_traffic_stream_and_ssyrk_memory(tmp_path: Path) -> None:
    """SpMV-class cases report bytes moved per stored entry and the fraction of the stream bandwidth
    (measured once per run) for ours and the library baselines; SSYRK states each side's memory."""
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "systec_ref", "bench", "--quick", "--repeats", "1", "--suite", "sparse",
                        "--kernel", "ssymv/poisson2d", "syprd/bar", "bellman/les_miserables_graph",
                        "ssyrk/elasticity2d", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**os.environ, "SYSTEC_REF_CACHE": str(tmp_path / "cache"),
                                         "COLUMNS": "200"})  # (a narrow table wraps its headers)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    stream = doc["machine"]["stream bandwidth"]
    assert stream["copy GB/s"] > 0 and stream["add GB/s"] > 0
    assert stream["reference GB/s"] == max(stream["copy GB/s"], stream["add GB/s"])
    cases = {c["kernel"]: c for c in doc["cases"]}
    baseline = {"ssymv/poisson2d": "scipy CSR A @ x", "syprd/bar": "scipy CSR x @ (A @ x)",
                "bellman/les_miserables_graph": "numpy min-plus on CSR (reduceat)"}
    for name, lib in baseline.items():
        res = cases[name]["results"]
        for impl in ("systec_ref (symmetric)", "systec_ref (symmetry off)", lib):
            v = res[impl]
            assert v["bytes_moved"] > 0 and v["stored_entries"] > 0
            assert v["bytes_per_stored_entry"] == pytest.approx(v["bytes_moved"] / v["stored_entries"])
            assert v["GB_per_s"] == pytest.approx(v["bytes_moved"] / v["median_s"] / 1e9)
            assert v["fraction_of_stream"] == pytest.approx(v["GB_per_s"] / stream["reference GB/s"])
        # canonical storage holds fewer entries, and moves fewer bytes, than every permutation
        sym, off = res["systec_ref (symmetric)"], res["systec_ref (symmetry off)"]
        assert sym["stored_entries"] < off["stored_entries"] and sym["bytes_moved"] < off["bytes_moved"]
    spmv = cases["ssymv/poisson2d"]["results"]
    # the scipy baseline is the 32-bit one a user gets: 4 bytes less per stored entry than 64-bit indices
    narrow, wide = spmv["scipy CSR A @ x"], spmv["scipy CSR A @ x (64-bit indices)"]
    assert narrow["stored_entries"] == wide["stored_entries"]
    assert wide["bytes_moved"] - narrow["bytes_moved"] >= 4 * narrow["stored_entries"]
    ssyrk = cases["ssyrk/elasticity2d"]
    assert all("bytes_moved" not in v for v in ssyrk["results"].values())  # not an SpMV-class case
    mem = ssyrk["memory"]
    assert mem["scipy CSR A @ A.T: A (CSR) bytes"] > 0 and mem["scipy CSR A @ A.T: A A' (CSR) bytes"] > 0
    assert "GB/s" in r.stdout and "of stream" in r.stdout
    md = subprocess.run([sys.executable, "-m", "systec_ref", "bench", "--markdown", str(out / "results.json")],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert md.returncode == 0, md.stderr


def test_traffic_table_lists_timeable_spmv_cases() -> None:
    from systec_ref.bench import suite

    def impl(median_s: float, moved: int, stored: int) -> dict:
        v = {"median_s": median_s, "bytes_moved": moved, "stored_entries": stored,
             "bytes_per_stored_entry": moved / stored}
        return v
    big = {"systec_ref (symmetric)": impl(2e-3, 40_000_000, 3_000_000),
           "scipy CSR A @ x": impl(3e-3, 80_000_000, 5_000_000), "tensora": {"median_s": 9e-3}}
    tiny = {"systec_ref (symmetric)": impl(2e-6, 4_000, 300)}
    doc = {"machine": {"stream bandwidth": {"reference GB/s": 20.0}},
           "cases": [{"kernel": "ssymv/big", "results": big}, {"kernel": "ssymv/tiny", "results": tiny}]}
    for c in doc["cases"]:
        suite.with_bandwidth(c, 20.0)
    assert big["scipy CSR A @ x"]["GB_per_s"] == pytest.approx(80 / 3)
    assert big["scipy CSR A @ x"]["fraction_of_stream"] == pytest.approx(80 / 3 / 20)
    assert "GB_per_s" not in big["tensora"]
    text = "\n".join(suite.traffic_table(doc))
    assert "stream bandwidth 20.0 GB/s" in text
    assert "| ssymv/big | systec_ref (symmetric) | 2 | 40.0 | 13.3 | 20.0 | 100% |" in text
    assert "| ssymv/big | scipy CSR A @ x | 3 | 80.0 | 16.0 | 26.7 | 133% |" in text
    assert "tiny" not in text and "tensora" not in text  # under 0.1 ms: the call, not the kernel, is timed


def test_ssyrk_runs_on_pyamg_matrices_beside_the_random_one() -> None:
    from systec_ref.bench import sparse

    names = {c.name for c in sparse.CASES if c.name.startswith("ssyrk/")}
    assert names == {"ssyrk/random-d0.1", "ssyrk/poisson2d", "ssyrk/elasticity2d"}
    spmv_class = {c.name.split("/")[0] for c in sparse.CASES if c.traffic}
    assert spmv_class == {"ssymv", "syprd", "bellman"}


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


def test_markdown_names_each_suites_machine_when_runs_differ() -> None:
    """Suites merged from runs on two machines (results.json's "runs") get a machine line each."""
    from systec_ref.bench import suite

    def machine(platform: str, python: str) -> dict:
        return {"cpu": "AMD EPYC", "cores": 2, "platform": platform, "python": python, "compiler": "cc"}
    doc = {"machine": machine("a", "3.11.7"), "repeats": 7, "quick": False, "cases": [],
           "runs": {"dense": {"machine": machine("a", "3.11.7"), "repeats": 7},
                    "sparse": {"machine": machine("b", "3.11.2"), "repeats": 7}}}
    text = suite.markdown(doc)
    assert "Machine (dense suite): AMD EPYC, 2 cores; a; Python 3.11.7" in text
    assert "Machine (sparse suite): AMD EPYC, 2 cores; b; Python 3.11.2" in text
    doc["runs"]["sparse"] = doc["runs"]["dense"]
    assert suite.markdown(doc).startswith("Machine: AMD EPYC, 2 cores; a; Python 3.11.7")
