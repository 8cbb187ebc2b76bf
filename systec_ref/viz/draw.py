"""Graphviz drawings of loop nests: one stage, or a before/after sheet of one pass.

The layout runs left to right (nesting depth across, statements down), which
keeps wide programs such as MTTKRP-5 readable: long labels never overlap,
they make the drawing taller.  Colours: loops blue, conditionals orange
(labelled with the equality pattern they guard), assignments white (their
factors are in the label), lets grey, block comments yellow notes; on a
before/after sheet, green = added, red = removed, gold = changed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from ..errors import ToolError
from .diff import ADDED, CHANGED, REMOVED, SAME

_STYLE = {
    "program": 'shape=doubleoctagon style=filled fillcolor="#e8e8e8"',
    "loop": 'shape=box style="rounded,filled" fillcolor="#dbe9f7"',
    "if": 'shape=hexagon style=filled fillcolor="#fde3c3"',
    "else": 'shape=hexagon style=filled fillcolor="#fde3c3"',
    "permute": 'shape=box style="rounded,filled,dashed" fillcolor="#efe1f7"',
    "blas": 'shape=box3d style=filled fillcolor="#d7f2dc"',
    "block": 'shape=note style=filled fillcolor="#fff7c9"',
    "assign": 'shape=box style=filled fillcolor="#ffffff"',
    "let": 'shape=box style=filled fillcolor="#eeeeee"',
}
_STATUS = {ADDED: "#2e9e44", REMOVED: "#d33a2c", CHANGED: "#c99a06"}


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrap(label: str, width: int = 60) -> str:
    if len(label) <= width:
        return label
    out, line = [], ""
    for word in label.split(" "):
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = "    " + word
        else:
            line = f"{line} {word}" if line else word
    out.append(line)
    return "\\l".join(_esc(x) for x in out) + "\\l"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _nodes(g: nx.DiGraph, prefix: str, status: dict[str, str] | None, indent: str) -> list[str]:
    lines = []
    for n in sorted(g.nodes, key=lambda x: int(x[1:])):
        d = g.nodes[n]
        label = _wrap(d["label"])
        label = label if label.endswith("\\l") else _esc(label)
        style = _STYLE.get(d["kind"], "")
        st = (status or {}).get(n, SAME)
        if st != SAME:
            style += f' color="{_STATUS[st]}" penwidth=3'
            label = f"[{st}] " + label if not label.endswith("\\l") else f"[{st}]\\l" + label
        lines.append(f'{indent}{prefix}{n} [label="{label}" {style}];')
    # with rankdir=LR, ordering=out stacks a node's children top-down in the order their edges are
    # written: program order (tests/test_explain.py checks the laid-out positions with dot -Tplain)
    for a, b, e in sorted(g.edges(data=True), key=lambda t: (int(t[0][1:]), int(t[1][1:]))):
        # statement order is kept by ordering=out; drawing 'next' edges too only adds crossing curves
        if e.get("kind") == "nest":
            lines.append(f"{indent}{prefix}{a} -> {prefix}{b};")
    return lines


_HEAD = ['  graph [rankdir=LR ordering=out fontname="Helvetica" nodesep=0.15 ranksep=0.35];',
         '  node [fontname="Courier" fontsize=10 margin="0.08,0.04"];',
         '  edge [color="#777777"];']


def stage_dot(g: nx.DiGraph, title: str, command: str = "") -> str:
    lines = [f"// {command}" if command else "// systec_ref", "digraph stage {",
             *_HEAD, f"  label={_quote(title)}; labelloc=t; fontsize=14;"]
    lines += _nodes(g, "", None, "  ")
    return "\n".join(lines + ["}"]) + "\n"


def pass_dot(before: nx.DiGraph, after: nx.DiGraph, sb: dict[str, str], sa: dict[str, str], title: str,
             before_title: str, after_title: str, command: str = "") -> str:
    lines = [f"// {command}" if command else "// systec_ref", "digraph pass {",
             *_HEAD, f"  label={_quote(title)}; labelloc=t; fontsize=14;"]
    # defined after-first so that (LR layout) 'before' ends up on top
    for name, g, st, t in (("after", after, sa, after_title), ("before", before, sb, before_title)):
        lines.append(f"  subgraph cluster_{name} {{")
        lines.append(f'    label={_quote(t)}; style=rounded; color="#999999";')
        lines += _nodes(g, f"{name[0]}_", st, "    ")
        lines.append("  }")
    return "\n".join(lines + ["}"]) + "\n"


def have_dot() -> bool:
    return shutil.which("dot") is not None


DOT_HINT = "Graphviz's 'dot' is not installed: wrote .dot files only (install it with 'apt-get install graphviz')"


def render(dot_source: str, path: Path, fmt: str, command: str = "") -> None:
    """Write ``path`` in ``fmt`` (svg or png) with Graphviz; ``command`` (the one that
    reproduces the file) goes into an SVG comment or a PNG text chunk."""
    exe = shutil.which("dot")
    if exe is None:
        raise ToolError(DOT_HINT)
    try:
        r = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot_source, capture_output=True, text=True,
                           timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolError(f"Graphviz failed: {e}") from None
    if r.returncode != 0:
        raise ToolError(f"Graphviz failed on {path.name}: {r.stderr.strip()}")
    if command:
        _stamp(path, fmt, command)


def _stamp(path: Path, fmt: str, command: str) -> None:
    if fmt == "svg":
        text = path.read_text(encoding="utf-8")
        # an XML comment cannot hold '--': the comment gives the gist, <metadata> the exact command
        comment = "<!-- reproduce: " + command.replace("--", "- -") + " -->\n"
        head, sep, rest = text.partition("?>\n")  # after the XML declaration, which must stay first
        text = head + sep + comment + rest if sep else comment + text
        from xml.sax.saxutils import escape

        at = text.find(">", text.find("<svg")) + 1
        text = text[:at] + f"\n<metadata>{escape(command)}</metadata>" + text[at:]
        path.write_text(text, encoding="utf-8")
    elif fmt == "png":
        import struct
        import zlib

        data = path.read_bytes()
        chunk = b"Comment\0" + command.encode("latin-1", "replace")
        tagged = b"tEXt" + chunk
        text = struct.pack(">I", len(chunk)) + tagged + struct.pack(">I", zlib.crc32(tagged) & 0xFFFFFFFF)
        path.write_bytes(data[:33] + text + data[33:])  # right after the 8-byte signature and IHDR
