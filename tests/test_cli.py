"""``python -m systec_ref``: run, show, check — exit codes and what they print."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import EXAMPLES, ROOT, sizes_for

import systec_ref


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("NO_COLOR", None)
    e.pop("COLUMNS", None)  # the CLI's own width for piped output, whatever terminal (or test worker) this is
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "systec_ref", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=e)


def assert_clean(proc: subprocess.CompletedProcess, code: int = 0) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "\x1b[" not in proc.stdout + proc.stderr  # piped: no ANSI escape codes


def test_run_mttkrp5():
    proc = cli("run", "examples/mttkrp5.ein", "--size", "n=4,r=3")
    assert_clean(proc)
    assert "agree" in proc.stdout and "DISAGREE" not in proc.stdout
    assert "sizes n=4, r=3" in proc.stdout
    # the definition's counts for n=4, r=3: 4^5 * 3 = 3072 points, 4 multiplications each
    assert "12288" in proc.stdout and "3072" in proc.stdout


def _sizes_arg(path) -> str:
    sizes = sizes_for(systec_ref.load(path), 3, 2)
    return ",".join(f"{k}={v}" for k, v in sizes.items())


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_run_every_example(path):
    proc = cli("run", str(path.relative_to(ROOT)), "--size", _sizes_arg(path), "--seed", "1")
    assert_clean(proc)
    assert proc.stdout.rstrip().splitlines()[-1].startswith("agree: every program matches")
    assert "definition" in proc.stdout and "loop nest (lower)" in proc.stdout


def test_run_every_example_default_sizes_in_one_process():
    # the same as above, in-process and quick: cli.main is what the module runs
    from systec_ref import cli as cli_mod

    for path in EXAMPLES:
        assert cli_mod.main(["run", str(path), "--no-color", "--density", "0.5"]) == 0, path.stem


def test_run_sparse_density_flag():
    proc = cli("run", "examples/bellman.ein", "--size", "n=5", "--density", "0.3", "--seed", "3")
    assert_clean(proc)
    assert "density 0.3" in proc.stdout and "agree" in proc.stdout


def test_show_prints_the_kernel_and_a_loop():
    proc = cli("show", "examples/ssymv.ein")
    assert_clean(proc)
    out = proc.stdout
    assert "kernel ssymv" in out
    assert "in  A[n, n] symmetric" in out
    assert "y[i] += A[i, j] * x[j]" in out
    loops = [line.strip() for line in out.splitlines() if line.strip().startswith("for ")]
    assert len(loops) == 2 and {loops[0].split()[1], loops[1].split()[1]} == {"i", "j"}
    assert out.index("kernel ssymv") < out.index(loops[0])


def test_show_comments_are_not_printed_back():
    proc = cli("show", "examples/mttkrp3.ein")
    assert_clean(proc)
    assert "MTTKRP of a symmetric" not in proc.stdout
    assert "C[i, j] += A[i, k, l] * B[l, j] * B[k, j]" in proc.stdout


def test_check_exits_0():
    proc = cli("check", "examples/ssymv.ein", "--size", "n=3")
    assert_clean(proc)
    assert "every stage agrees" in proc.stdout
    assert "lower" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mttkrp3", "coulomb", "bellman", "widest"])
def test_check_more_examples(name):
    proc = cli("check", f"examples/{name}.ein", "--size", "n=3,r=2" if name == "mttkrp3" else "n=3",
               "--density", "0.5")
    assert_clean(proc)
    assert "every stage agrees" in proc.stdout


@pytest.mark.parametrize("command", [[], ["run"], ["show"], ["check"], ["emit"]], ids=lambda c: c[0] if c else "main")
def test_help(command):
    proc = cli(*command, "--help")
    assert_clean(proc)
    assert proc.stdout.startswith("usage: python -m systec_ref")
    if command:
        assert "kernel" in proc.stdout  # the positional .ein argument is documented


def test_no_color_flag_and_env():
    for args, env in ((["--no-color"], None), ([], {"NO_COLOR": "1"})):
        proc = cli("run", "examples/ssymv.ein", "--size", "n=2", *args, env=env)
        assert_clean(proc)
        assert "agree" in proc.stdout


def test_internal_error_is_one_line_exit_3(monkeypatch, capsys) -> None:
    """A bug (any exception that is not a user error) gives one line and status 3, never a traceback."""
    from systec_ref import cli

    def boom(args):
        raise RuntimeError("something broke\nsecond line")

    parser = cli.build_parser()
    args = parser.parse_args(["show", "examples/ssymv.ein"])
    monkeypatch.setattr(cli, "build_parser", lambda *_: type("P", (), {"parse_args": lambda self, a: args})())
    args.fn = boom
    monkeypatch.delenv("SYSTEC_REF_DEBUG", raising=False)
    assert cli.main(["show", "examples/ssymv.ein"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("internal error: RuntimeError: something broke (a bug") and "Traceback" not in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("seed", ["-5", "x", "1.5"])
def test_a_bad_seed_is_the_users_error(seed):
    proc = cli("run", "examples/ssymv.ein", f"--seed={seed}")
    assert_clean(proc, 2)
    assert "--seed" in proc.stderr and "non-negative integer" in proc.stderr


def test_random_inputs_refuses_a_negative_seed():
    with pytest.raises(systec_ref.InputError, match="seed -1 is not a non-negative integer"):
        systec_ref.load(ROOT / "examples" / "ssymv.ein").random_inputs({"n": 3}, seed=-1)
