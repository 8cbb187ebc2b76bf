"""``explain``: golden text for every example, files written by --out-dir, errors."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "golden"))
import regen  # noqa: E402

EXAMPLES = sorted((ROOT / "examples").glob("*.ein"))


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch):
    for var in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "systec_ref", *args], cwd=ROOT, capture_output=True, text=True,
                          env=e, timeout=300)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_explain_matches_golden(example: Path) -> None:
    got = regen.explain_text(example)
    want = (ROOT / "tests" / "golden" / "explain" / f"{example.stem}.txt").read_text()
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "now", n=2))
        pytest.fail(f"explain output of {example.name} changed; if intended, run "
                    f"'python tests/golden/regen.py' and review the diff:\n{diff[:4000]}")


def test_golden_text_shows_every_applying_pass() -> None:
    text = (ROOT / "tests" / "golden" / "explain" / "mttkrp5.txt").read_text()
    for name in ("lower", "identify-symmetry", "restrict-iteration", "define-assignments", "normalize",
                 "group-assignments", "split-diagonals", "hoist-reads"):
        assert f" {name}: " in text, name
    assert "\x1b[" not in text
    assert "int systec_mttkrp5(" in text


def test_piped_output_has_no_escape_codes_and_verifies() -> None:
    r = _cli("explain", "examples/ssyrk.ein")
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout
    assert "replicate-output" in r.stdout and "agrees with the previous stage" in r.stdout


def test_malformed_kernel_is_located_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ein"
    bad.write_text("kernel k\nin A[n,n] symmetric\nout y[n]\ny[i] += A[i,j] * z[j]\n")
    r = _cli("explain", str(bad))
    assert r.returncode == 2
    assert f"{bad}:4:18: error: unknown tensor 'z'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_list_passes_and_selection() -> None:
    r = _cli("explain", "--list-passes")
    assert r.returncode == 0
    assert r.stdout.split() == ["lower", "gemm-form", "concordize", "identify-symmetry", "restrict-iteration",
                                "define-assignments", "normalize", "group-assignments", "replicate-output",
                                "split-diagonals", "consolidate-blocks", "lookup-table", "sparse-iterate",
                                "fuse-faces", "tile", "blas-calls", "hoist-reads", "workspace", "unroll-and-jam",
                                "reverse-sweep", "mirror-written"]
    r = _cli("explain", "examples/ssymv.ein", "--after", "normalize", "--no-verify")
    assert r.returncode == 0 and "normalize:" in r.stdout and "define-assignments:" not in r.stdout.split("all")[0]
    r = _cli("explain", "examples/ssymv.ein", "--after", "no-such-pass")
    assert r.returncode == 2 and "no pass named 'no-such-pass'" in r.stderr


def test_json_format() -> None:
    r = _cli("explain", "examples/syprd.ein", "--format", "json")
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert [s["name"] for s in doc["stages"]][0] == "lower"
    assert all(s["agrees"] for s in doc["stages"])


@pytest.mark.slow
def test_out_dir_files(tmp_path: Path) -> None:
    out = tmp_path / "ex"
    r = _cli("explain", "examples/mttkrp3.ein", "--out-dir", str(out))
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert "00-lower.txt" in names and "00-lower.dot" in names and "index.html" in names and "mttkrp3.c" in names
    for p in out.glob("*.txt"):
        assert p.read_text().startswith("# python -m systec_ref explain examples/mttkrp3.ein --out-dir")
    if "00-lower.svg" in names:  # Graphviz present (the setup command installs it)
        for svg in out.glob("*.svg"):
            ET.parse(svg)  # well-formed
        html = (out / "index.html").read_text()
        for src in [s.split('"')[1] for s in html.split('<img src=')[1:]]:
            assert (out / src).exists(), src


def test_without_graphviz_writes_dot_and_says_how(tmp_path: Path) -> None:
    # a PATH without dot (nor anything else); the interpreter is the project's own, named by its path
    bindir = tmp_path / "bin"
    bindir.mkdir()
    out = tmp_path / "ex"
    r = subprocess.run([sys.executable, "-m", "systec_ref", "explain", "examples/ssymv.ein", "--out-dir",
                        str(out), "--no-verify"], cwd=ROOT, capture_output=True, text=True,
                       env={"PATH": str(bindir), "HOME": str(tmp_path), "SYSTEC_REF_CACHE": str(tmp_path / "c"),
                            "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    # C compilation is not needed to explain; without cc the C text is still generated
    assert r.returncode == 0, r.stderr
    assert (out / "09-split-diagonals.dot").exists()
    assert not list(out.glob("*.svg"))
    assert "apt-get install graphviz" in r.stderr


def test_index_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The --out-dir page loads in a real browser with every diagram present (the setup command installs
    Chromium from Debian's packages; without it this test fails and says how to get it)."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "headless Chromium is needed for this test: 'apt-get install chromium' (./dev.sh does it as root)"
    out = tmp_path / "ex"
    r = _cli("explain", "examples/ssyrk.ein", "--out-dir", str(out))
    assert r.returncode == 0, r.stderr
    for svg in out.glob("*.svg"):
        ET.parse(svg)
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
           f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*cmd, "--dump-dom", (out / "index.html").as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    body = dom[dom.index("<body"):dom.index(">", dom.index("<body"))]
    images = int(body.split('data-images="')[1].split('"')[0])
    assert images == len(list(out.glob("*.svg"))) > 10
    assert 'data-broken-images="0"' in body
    shot = tmp_path / "page.png"
    subprocess.run([*cmd, "--window-size=1400,1800", f"--screenshot={shot}", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_every_written_file_carries_the_reproducing_command(tmp_path: Path) -> None:
    out = tmp_path / "ex"
    r = _cli("explain", "examples/syprd.ein", "--out-dir", str(out), "--format", "json")
    assert r.returncode == 0, r.stderr
    command = f"python -m systec_ref explain examples/syprd.ein --out-dir {out} --format json"
    for p in sorted(out.iterdir()):
        text = p.read_text()
        if p.suffix == ".svg":
            assert f"<metadata>{command}</metadata>" in text, p.name
        elif p.suffix == ".json":
            assert json.loads(text)["command"] == command
        elif p.suffix == ".html":
            assert f"<!-- {command} -->" in text.splitlines()[1]
        else:
            assert command in text.splitlines()[0], p.name


def test_drawings_read_top_down_in_program_order() -> None:
    """Graphviz lays siblings out in the order their edges are written: statements of one body must appear
    top to bottom as in the program (checked on the laid-out positions, not on the .dot text)."""
    import systec_ref
    from systec_ref.ir.graph import to_graph
    from systec_ref.viz.draw import stage_dot

    k = systec_ref.load(ROOT / "examples" / "ssymv.ein")
    g = to_graph(k.final)
    plain = subprocess.run(["dot", "-Tplain"], input=stage_dot(g, "t"), capture_output=True, text=True,
                           check=True).stdout
    y = {line.split()[1]: float(line.split()[3]) for line in plain.splitlines() if line.startswith("node ")}
    checked = 0
    for parent in g.nodes:
        kids = [b for _, b, e in g.out_edges(parent, data=True) if e.get("kind") == "nest"]
        kids.sort(key=lambda n: int(n[1:]))
        for a, b in zip(kids, kids[1:]):
            assert y[a] > y[b], f"{g.nodes[a]['label']!r} is drawn below {g.nodes[b]['label']!r}"
            checked += 1
    assert checked >= 5
