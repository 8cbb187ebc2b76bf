"""``python -m systec_ref``: run, show and check kernels from the command line.

User errors (bad source, bad sizes, missing tools) print one located message
and exit with status 2; a disagreement between programs exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import api
from .check import CheckReport, check_stages, never_ran_note
from .compare import Agreement, agree
from .emit import cache as kernel_cache
from .errors import SystecError
from .interp.counts import Counts
from .ir.printer import print_program
from .lang.printer import print_kernel
from .reference import numpy_reference
from .storage import PackedTensor, for_program

#: what --size says of the dimensions it does not name (Kernel.default_sizes)
DEFAULT_SIZE_HELP = "others: the kernel's default, at least 4, chosen so that every loop nest runs"
#: the program's name when started as a module; the console script goes by its own name
MODULE_PROG = "python -m systec_ref"
CONSOLE_PROG = "systec-ref"
#: the kernel argument that means "read the source from standard input"
STDIN = "-"
KERNEL_HELP = "a .ein file, a bundled example by name (e.g. mttkrp3, sparse/ssymv), or - for standard input"


def prog_name(argv0: str) -> str:
    """The name the user called us by, for help and error messages: the console script's own name
    (``systec-ref``), else the module form (``python -m systec_ref``: argv[0] is then ``__main__.py``)."""
    name = Path(argv0).name
    return name if name.startswith(CONSOLE_PROG) else MODULE_PROG


def version() -> str:
    """The installed distribution's version; the package's own ``__version__`` when it is not installed
    (run from a source tree on ``sys.path``).  pyproject.toml and ``__version__`` agree (a test checks)."""
    from importlib import metadata

    try:
        return metadata.version("systec_ref")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def _console(args: argparse.Namespace | None = None, stderr: bool = False) -> Console:
    no_color = bool(os.environ.get("NO_COLOR")) or bool(getattr(args, "no_color", False))
    probe = Console(stderr=stderr)
    # piped output gets a fixed, generous width: tables stay readable and output stays reproducible
    width = None if probe.is_terminal else int(os.environ.get("COLUMNS", "0") or 0) or 132
    return Console(stderr=stderr, no_color=no_color, highlight=False, soft_wrap=True, width=width,
                   force_terminal=None if not no_color else False)


def parse_sizes(text: str | None) -> dict[str, int]:
    sizes: dict[str, int] = {}
    if not text:
        return sizes
    for part in text.split(","):
        name, eq, value = part.strip().partition("=")
        if not eq or not name.strip() or not value.strip().isdigit():
            raise SystecError(f"--size: '{part.strip()}' is not of the form name=positive integer (e.g. n=8,r=3)")
        sizes[name.strip()] = int(value)
    return sizes


def _sizes_for(kernel: api.Kernel, given: dict[str, int]) -> dict[str, int]:
    dims = sorted({d for t in kernel.ast.decls for d in t.dims if isinstance(d, str)})
    unknown = sorted(set(given) - set(dims))
    if unknown:
        # one --size for a batch of kernels is handy; say what was not used rather than fail
        print(f"note: --size {', '.join(unknown)} ignored: kernel {kernel.name} has dimensions "
              f"{', '.join(dims) or '(none)'}", file=sys.stderr)
    return kernel.default_sizes(given)


def _never_ran_hint(kernel: api.Kernel, density: float) -> str:
    sparse = density < 1 and any(t.format == "sparse" for t in kernel.ast.inputs)
    return f"raise --size{' or --density' if sparse else ''} to exercise them"


def _fmt_reads(reads: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(reads.items()))


def _counts_table(title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("program", "agrees", "max abs err", "mults", "adds", "updates", "reads"):
        t.add_column(col, justify="right" if col not in ("program", "reads", "agrees") else "left")
    return t


def _read_stdin() -> str:
    if sys.stdin is None:
        raise SystecError("-: there is no standard input to read the kernel from")
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # a text stream without bytes underneath (a test's StringIO): already decoded
        return sys.stdin.read()
    data = raw.read()
    try:
        # .ein files are UTF-8 whatever the locale says, so standard input is read the same way
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SystecError(f"<stdin>: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _load(args: argparse.Namespace) -> api.Kernel:
    symmetry, faces = not getattr(args, "naive", False), getattr(args, "faces", "split")
    tile = getattr(args, "tile", api.pipeline.DEFAULT_TILE)
    blas = not getattr(args, "no_blas", False)
    if args.kernel == STDIN:
        k = api.compile(_read_stdin(), "<stdin>", symmetry=symmetry, faces=faces, tile=tile, blas=blas)
    else:
        k = api.load(args.kernel, symmetry=symmetry, faces=faces, tile=tile, blas=blas)
    packed = _packed_names(args)
    if packed:
        _ = k.with_packed(packed).naive  # a name that is not a dense symmetric input is refused here, by name
    return k


def _packed_names(args: argparse.Namespace) -> tuple[str, ...]:
    """The inputs of ``--packed``, sorted."""
    given = getattr(args, "packed", None) or ""
    return tuple(sorted({name.strip() for name in given.split(",") if name.strip()}))


def _finite(x: float) -> float | None:
    # JSON has no inf or NaN: an error that large is null (its 'detail' says where it went wrong)
    return x if x == x and abs(x) != float("inf") else None


def _counts_json(c: Counts) -> dict[str, object]:
    return {**c.summary(), "work": c.work, "never_ran": list(c.never_ran)}


def _print_json(doc: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")


def _held(kernel: api.Kernel, arrays: dict, args: argparse.Namespace) -> dict:
    """``arrays`` as the kernel is handed them: the inputs of ``--packed`` packed (``Kernel.for_data`` then
    compiles for them, choosing slab copies by the sizes as ``run`` does)."""
    symmetry, packed = {d.name: d.symmetry for d in kernel.ast.inputs}, _packed_names(args)
    return {n: PackedTensor.from_dense(a, symmetry[n], check=False) if n in packed else a for n, a in arrays.items()}


def _formatted(kernel: api.Kernel, inputs: dict, args: argparse.Namespace) -> api.Kernel:
    """The kernel compiled for the storage formats of ``--sparse-format`` (``auto``: chosen from ``inputs``)
    and for the inputs of ``--packed`` packed."""
    arrays, _ = kernel.bind(inputs, check=False)
    return kernel.for_data(_held(kernel, arrays, args), "baseline" if getattr(args, "naive", False) else None,
                           args.sparse_format)


def cmd_run(args: argparse.Namespace) -> int:
    kernel = _load(args)
    sizes = _sizes_for(kernel, parse_sizes(args.size))
    inputs = kernel.random_inputs(sizes, seed=args.seed, density=args.density)
    arrays, dims = kernel.bind(inputs)
    held = _held(kernel, arrays, args)  # --packed: the kernel is handed those inputs packed
    kernel = kernel.for_data(held, None, args.sparse_format)
    ref, method = numpy_reference(kernel.ast, arrays, dims)
    dtype = kernel.ast.output.dtype
    runs = [("definition", kernel.definition(arrays, check=False))]
    runs.append((f"loop nest ({kernel.stages[0].name})", kernel.interpret(arrays, kernel.naive, check=False)))
    if kernel.final is not kernel.naive:
        final = kernel.interpret(arrays, kernel.final, check=False)
        runs.append((f"loop nest ({kernel.stages[-1].name}, final)", final))
    # (program, agreement with numpy, counts; None for compiled C, which counts nothing)
    rows: list[tuple[str, Agreement, Counts | None]] = [(label, agree(res.value, ref, dtype), res.counts)
                                                          for label, res in runs]
    notes = [never_ran_note(stage, res.counts, sizes, _never_ran_hint(kernel, args.density))
             for stage, (_, res) in zip((kernel.stages[0].name, kernel.stages[-1].name), runs[1:])]  # the nests
    if args.backend == "c":
        for label, optimize in (("C, baseline (symmetry passes off)", False), ("C, final stage", True)):
            got = kernel.run(backend="c", optimize=optimize, check=False, sparse_format=args.sparse_format, **held)
            rows.append((label, agree(got, ref, dtype), None))
    ok = all(a.ok for _, a, _ in rows)
    if args.format == "json":
        _print_json({"command": "run", "kernel": kernel.name, "sizes": sizes, "seed": args.seed,
                     "density": args.density, "backend": args.backend, "reference": method,
                     "programs": [{"program": label, "agrees": a.ok, "max_abs_err": _finite(a.max_abs_err),
                                   "detail": a.detail, "counts": None if c is None else _counts_json(c)}
                                  for label, a, c in rows],
                     "notes": [n for n in notes if n], "ok": ok})
        return 0 if ok else 1
    out = _console(args)
    table = _counts_table(f"{kernel.name}: sizes {', '.join(f'{k}={v}' for k, v in sizes.items()) or '(fixed)'}, "
                          f"seed {args.seed}, density {args.density}; reference: {method}")
    for label, a, c in rows:
        counts = ("", "", "", "") if c is None else (str(c.mults), str(c.adds), str(c.work), _fmt_reads(c.reads))
        table.add_row(label, "yes" if a.ok else f"NO {a.detail}", f"{a.max_abs_err:.3g}", *counts)
    out.print(table)
    for note in filter(None, notes):
        out.print(note, markup=False)
    _memory_report(kernel, arrays, out)
    if kernel.ast.output.format == "sparse":  # what the final stage returns: the entries its updates reach
        name = kernel.ast.output.name
        # (its first line: how kernels would be handed it as an input does not apply to an output)
        report = api.sparse_value(kernel.final, runs[-1][1].value).report(name)
        out.print("output: " + report.split("\n", 1)[0], markup=False)
    for p in (a for a in held.values() if isinstance(a, PackedTensor)):
        out.print("  " + p.report(next(n for n, a in held.items() if a is p)), markup=False)
    out.print(f"{'agree' if ok else 'DISAGREE'}: every program {'matches' if ok else 'does not match'} {method}")
    return 0 if ok else 1


def _memory_report(kernel: api.Kernel, inputs: dict, out: Console) -> None:
    """What the final stage stores of each sparse input, against storing every entry."""

    arrays, _ = kernel.bind(inputs, check=False)
    for name, st in for_program(kernel.final, arrays).items():
        out.print("memory: " + st.report(name), markup=False)


def cmd_show(args: argparse.Namespace) -> int:
    out = _console(args)
    kernel = _load(args)
    out.rule(f"kernel {kernel.name} (parsed)")
    out.print(print_kernel(kernel.ast), markup=False, end="")
    out.rule(f"stage 0: {kernel.stages[0].name}")
    out.print(print_program(kernel.naive), markup=False, end="")
    return 0


def _check_json(report: CheckReport, args: argparse.Namespace, sizes: dict[str, int], hint: str) -> dict:
    return {"command": "check", "kernel": report.kernel, "sizes": sizes, "seed": args.seed, "density": args.density,
            "stages": [{"index": n, "name": s.name, "changed": s.changed, "note": s.note,
                        "agrees_with_previous": s.vs_previous.ok, "agrees_with_definition": s.vs_definition.ok,
                        "max_abs_err": _finite(max(s.vs_previous.max_abs_err, s.vs_definition.max_abs_err)),
                        "detail": s.vs_previous.detail or s.vs_definition.detail, "counts": _counts_json(s.counts)}
                       for n, s in enumerate(report.stages)],
            "notes": report.never_ran_notes(hint), "ok": report.ok}


def cmd_check(args: argparse.Namespace) -> int:
    kernel = _load(args)
    sizes = _sizes_for(kernel, parse_sizes(args.size))
    inputs = kernel.random_inputs(sizes, seed=args.seed, density=args.density)
    kernel = _formatted(kernel, inputs, args)
    report = check_stages(kernel, inputs)
    if args.format == "json":
        _print_json(_check_json(report, args, sizes, _never_ran_hint(kernel, args.density)))
        return 0 if report.ok else 1
    out = _console(args)
    out.print(report.table(f"{kernel.name}: every stage against the previous one and the definition "
                           f"(sizes {', '.join(f'{k}={v}' for k, v in sizes.items())}, seed {args.seed})"))
    out.print(report.notes(), markup=False)
    for note in report.never_ran_notes(_never_ran_hint(kernel, args.density)):
        out.print(note, markup=False)
    _memory_report(kernel, inputs, out)
    out.print("every stage agrees" if report.ok else "DISAGREEMENT: see the table")
    return 0 if report.ok else 1


def cmd_emit(args: argparse.Namespace) -> int:
    kernel = _load(args)
    if _packed_names(args):  # no sizes here: slab copies wherever gemm-form's products need them
        kernel = kernel.with_packed(_packed_names(args))
    if args.sparse_format != "auto":  # (no inputs here to choose from: auto is the 64-bit default)
        kernel = kernel.with_formats(tuple((t.name, args.sparse_format) for t in kernel.ast.inputs
                                           if t.format == "sparse"))
    stage = None
    if args.stage:
        stage = args.stage
    elif args.naive:
        stage = "baseline"
    source = kernel.c_source(stage)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(source)
        except OSError as e:
            raise SystecError(f"cannot write {args.output}: {e.strerror}") from None
        return 0
    out = _console(args)
    if out.is_terminal and not out.no_color:
        from rich.syntax import Syntax

        out.print(Syntax(source, "c", theme="ansi_dark", background_color="default"))
    else:
        sys.stdout.write(source)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import suite  # imported when used: the other commands start without scipy and the cases

    out = _console(args)
    if args.markdown:
        import json

        try:
            doc = json.loads(Path(args.markdown).read_text(encoding="utf-8"))
            text = suite.markdown(doc)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystecError(f"{args.markdown}: not a results.json written by 'bench' ({e})") from None
        sys.stdout.write(text + "\n")
        return 0
    suite.run(args.kernel, args.quick, args.repeats, Path(args.out), out, tuple(args.suite or suite.SUITES))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .viz.explain import ExplainOptions, explain, pass_names, reproduce_command  # only 'explain' draws

    if args.list_passes:
        for name in pass_names(args.naive):
            print(name)
        return 0
    if not args.kernel:
        raise SystecError("explain: give a kernel file (or --list-passes)")
    kernel = _load(args)
    sizes = _sizes_for(kernel, parse_sizes(args.size))
    kernel = _formatted(kernel, kernel.random_inputs(sizes, seed=args.seed), args)
    show = "all" if args.all else f"before:{args.before}" if args.before else f"after:{args.after}" if args.after \
        else "changed"
    opts = ExplainOptions(sizes=sizes, seed=args.seed, verify=args.verify, show=show, fmt=args.format,
                          out_dir=Path(args.out_dir) if args.out_dir else None,
                          command=reproduce_command(sys.argv[1:] if args.argv is None else args.argv, args.prog))
    return explain(kernel, opts, _console(args))


def cmd_cache(args: argparse.Namespace) -> int:
    if args.action == "info":
        i = kernel_cache.info()
        print(f"directory: {i.directory}{'' if i.directory.exists() else ' (not created yet)'}")
        print(f"entries: {i.entries}\ntotal bytes: {i.total_bytes} ({i.total_bytes / 2**20:.1f} MiB)")
        print(f"size bound: {i.max_bytes} bytes ({i.max_bytes / 2**20:.1f} MiB; least recently used entries beyond "
              f"it are removed; "
              f"{kernel_cache.MAX_BYTES_VAR} sets it)")
        if i.problem:
            print(f"note: this directory cannot be used: it {i.problem.why}; each process compiles into a private "
                  f"temporary directory instead ({i.problem.fix}, or set SYSTEC_REF_CACHE)")
        return 0
    d, removed = kernel_cache.clear()
    for f in removed:
        print(f"removed {f}")
    print(f"removed {len(removed)} file{'' if len(removed) == 1 else 's'} of the compiled-kernel cache {d}")
    return 0



def _nonnegative(what: str, hint: str = "") -> Callable[[str], int]:
    """An argparse type: a non-negative integer, refused here with a one-line message (not deep inside numpy)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: expected a non-negative integer{hint}")
        return value
    return parse


#: a seed of numpy's generators; a tile side (0: no tiling)
_seed, _tile = _nonnegative("seed"), _nonnegative("tile", " (0: no tiling)")


RUN_JSON_HELP = """\
--format json prints one JSON document on stdout instead of the table (exit statuses unchanged):
  command, kernel, sizes {dim: n}, seed, density, backend, reference (how numpy computed it),
  programs: one per program run, each {program, agrees (boolean), max_abs_err (number, null if
    not finite), detail (where it disagrees, else ""), counts (null for C; else mults, adds,
    updates, local_updates, flushes, copies, iterations, work, reads {tensor: n},
    distinct {tensor: n}, never_ran [assignment positions])},
  notes [never-ran notes], ok (boolean: every program agrees)"""

CHECK_JSON_HELP = """\
--format json prints one JSON document on stdout instead of the table (exit statuses unchanged):
  command, kernel, sizes {dim: n}, seed, density,
  stages: one per stage in order, each {index, name, changed (boolean), note (what the pass did),
    agrees_with_previous, agrees_with_definition (booleans), max_abs_err (number, null if not
    finite), detail (where it disagrees, else ""), counts {mults, adds, updates, local_updates,
    flushes, copies, iterations, work, reads {tensor: n}, distinct {tensor: n}, never_ran [...]}},
  notes [never-ran notes], ok (boolean: every stage agrees with the previous one and the definition)"""


class _VersionAction(argparse.Action):
    """``--version``: looked up only when asked for (the metadata lookup costs a noticeable part of a start)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: object) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        sys.stdout.write(f"{CONSOLE_PROG} {version()}\n")
        parser.exit()


def _described(text: str) -> str:
    # the commands that document their JSON keep their epilog's layout, so their description is wrapped here
    return textwrap.fill(text, 100)


def build_parser(prog: str = MODULE_PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="A staged compiler for symmetric sparse tensor kernels.")
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, inputs: bool = True) -> None:
        sp.add_argument("kernel", help=KERNEL_HELP)
        sp.add_argument("--no-color", action="store_true", help="plain text, no colour")
        sp.add_argument("--naive", action="store_true", help="symmetry passes off (the baseline pipeline)")
        sp.add_argument("--faces", choices=("split", "compact"), default="split",
                        help="split: one nest per diagonal face (default); compact: faces of sets of 4+ "
                             "variables kept together for consolidate-blocks and lookup-table")
        tile(sp)
        if inputs:
            sp.add_argument("--size", help=f"sizes of dimensions, e.g. n=8,r=3 ({DEFAULT_SIZE_HELP})")
            sp.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs (default 0)")
            sp.add_argument("--density", type=float, default=1.0,
                            help="fraction of stored entries of sparse inputs (default 1)")
        sparse_format(sp, "auto" if inputs else "csf")

    def tile(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--tile", type=_tile, default=api.pipeline.DEFAULT_TILE, metavar="T",
                        help=f"side of the tiles of a dense strict triangle (pass 'tile'; 0: no tiling; "
                             f"default {api.pipeline.DEFAULT_TILE})")
        sp.add_argument("--no-blas", action="store_true",
                        help="no BLAS calls: plain C loops (passes 'gemm-form', 'tile' and 'blas-calls' change "
                             "nothing)")
        sp.add_argument("--packed", metavar="NAMES",
                        help="dense symmetric inputs handed over packed, their canonical entries only "
                             "(comma-separated, e.g. A): compiled for that, slab copies chosen by the sizes "
                             "(emit: wherever a product needs one); see README, packed inputs")

    def sparse_format(sp: argparse.ArgumentParser, default: str) -> None:
        sp.add_argument("--sparse-format", default=default, metavar="FORMAT",
                        help=f"how sparse inputs are handed to the kernel: auto (chosen from the inputs: 32-bit "
                             f"indices where they fit, dense levels where nearly full), csf (64-bit, compressed) "
                             f"or a name such as 'csf[pos=int32,crd=int32,dense=f0+f1]' (default {default})")

    sp = sub.add_parser("run", help="run a kernel on random inputs and check it against numpy",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=RUN_JSON_HELP,
                        description=_described("Run the kernel's definition, naive loop nest and final stage in "
                                               "the interpreter on random inputs; compare each with numpy; print "
                                               "operation counts. Exit 1 on any disagreement."))
    common(sp)
    sp.add_argument("--format", choices=("text", "json"), default="text",
                    help="text: a table (default); json: one document on stdout (fields below)")
    sp.add_argument("--backend", choices=("interp", "c"), default="interp",
                    help="also compile the baseline and final stages to C and check them (default: interp only)")
    sp.set_defaults(fn=cmd_run)
    sp = sub.add_parser("show", help="print the parsed kernel and its naive loop nest",
                        description="Print the parsed kernel and the naive loop nest ('lower').")
    common(sp, inputs=False)
    sp.set_defaults(fn=cmd_show)
    sp = sub.add_parser("explain", help="every pass, before and after, as text and diagrams",
                        description="Show each pass that changed the program: a banner, the loop nest with the "
                                    "changed lines marked, the interpreter's verdict and counts; then a summary "
                                    "and the generated C. --out-dir writes numbered text/Graphviz/SVG files per "
                                    "stage, a before/after sheet per pass, the C and an index.html.")
    sp.add_argument("kernel", nargs="?", help=KERNEL_HELP)
    sp.add_argument("--no-color", action="store_true", help="plain text, no colour")
    sp.add_argument("--naive", action="store_true", help="symmetry passes off, for comparison")
    sp.add_argument("--faces", choices=("split", "compact"), default="split", help="see 'check --help'")
    tile(sp)
    sp.add_argument("--size", help=f"sizes of dimensions for --verify, e.g. n=6,r=3 ({DEFAULT_SIZE_HELP})")
    sp.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs (default 0)")
    sparse_format(sp, "auto")
    sp.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                    help="run every stage in the interpreter on random inputs (default: on)")
    which = sp.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="show every stage, changed or not")
    which.add_argument("--before", metavar="PASS", help="show only the program before PASS")
    which.add_argument("--after", metavar="PASS", help="show only the program after PASS")
    sp.add_argument("--list-passes", action="store_true", help="print the pass names in order and exit")
    sp.add_argument("--format", choices=("text", "dot", "svg", "png", "json"), default="text",
                    help="text (default), json or dot on stdout; with --out-dir: the picture format (svg default)")
    sp.add_argument("--out-dir", help="write numbered files per stage, the C and index.html here")
    sp.set_defaults(fn=cmd_explain, argv=None)
    sp = sub.add_parser("emit", help="print (or write) the generated C of a stage",
                        description="Print the C99 generated from the final stage (or --stage NAME, or the "
                                    "baseline with --naive), syntax-highlighted on a terminal.")
    common(sp, inputs=False)
    sp.add_argument("--stage", help="the stage to emit (default: the final one)")
    sp.add_argument("-o", "--output", help="write the C to this file instead of printing it")
    sp.set_defaults(fn=cmd_emit)
    sp = sub.add_parser("bench", help="time symmetric C against the baseline and the libraries",
                        description="Benchmarks: each kernel's symmetric C against the same compiler with "
                                    "the symmetry passes off and against numpy/OpenBLAS/scipy.sparse, on dense "
                                    "inputs and on sparse ones (canonical-only storage; setup and memory reported "
                                    "apart), single-threaded, medians of interleaved repeats; writes "
                                    "OUT/results.json.")
    sp.add_argument("--quick", action="store_true", help="small sizes (a smoke test, seconds)")
    sp.add_argument("--kernel", nargs="*", help="only these kernels (e.g. ssymv mttkrp4) or kernel/input "
                                                "cases (e.g. ssymv/poisson2d)")
    sp.add_argument("--suite", nargs="*", choices=("dense", "sparse"), help="only these suites (default: both)")
    sp.add_argument("--markdown", metavar="RESULTS_JSON", help="print the tables of an earlier run as Markdown "
                                                               "and exit")
    sp.add_argument("--repeats", type=int, default=7, help="timed rounds per implementation (default 7)")
    sp.add_argument("--out", default="bench-out", help="directory for results.json (default bench-out)")
    sp.add_argument("--no-color", action="store_true", help="plain text, no colour")
    sp.set_defaults(fn=cmd_bench)
    sp = sub.add_parser("check", help="run every stage in the interpreter and compare",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=CHECK_JSON_HELP,
                        description=_described("Run every stage of the pipeline in the interpreter on random "
                                               "inputs; report per stage whether it agrees with the previous "
                                               "stage and with the definition, and its operation counts. Exit 1 "
                                               "on any disagreement."))
    common(sp)
    sp.add_argument("--format", choices=("text", "json"), default="text",
                    help="text: a table (default); json: one document on stdout (fields below)")
    sp.set_defaults(fn=cmd_check)
    sp = sub.add_parser("cache", help="show or clear the compiled-kernel cache",
                        description="info: the cache directory, its entries, their total size and the size "
                                    "bound. clear: remove the cache's entries (only files it named itself).")
    sp.add_argument("action", choices=("info", "clear"), help="info: show the cache; clear: empty it")
    sp.set_defaults(fn=cmd_cache)
    return p


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    prog = prog or prog_name(sys.argv[0] if sys.argv else "")
    args = build_parser(prog).parse_args(argv)
    args.prog = prog
    if argv is not None and hasattr(args, "argv"):
        args.argv = list(argv)
    warnings.formatwarning = kernel_cache.format_warning  # a cache warning: one line, no source line
    try:
        return args.fn(args)
    except SystecError as e:
        sys.stdout.flush()
        print(str(e), file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of ours (or of a library under us): one line, not a traceback
        if os.environ.get("SYSTEC_REF_DEBUG"):
            raise
        sys.stdout.flush()
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"internal error: {type(e).__name__}: {first} (a bug: please report it with the command; "
              f"SYSTEC_REF_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 3
