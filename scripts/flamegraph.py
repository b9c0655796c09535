#!/usr/bin/env python3
"""A flame graph SVG from `perf script` output (stdin) -- for
scripts/profile.sh, so a profile needs nothing beyond perf and python3.

Stacks are folded (root first), widths are sample counts; one <rect> per
frame with a <title> for hovering. Usage:
    perf script -i perf.data | scripts/flamegraph.py "title" > out.svg
"""
import html
import re
import sys
from collections import defaultdict

WIDTH, ROW, MIN_PX = 1200, 16, 0.3


def fold(lines):
    """Yields (comm, [frames root..leaf]) per sample."""
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, list(reversed(frames))
            comm, frames = None, []
        elif not line.startswith((" ", "\t")):
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(None, 1)
            sym = parts[1] if len(parts) > 1 else parts[0]
            sym = re.sub(r"\+0x[0-9a-f]+", "", sym)
            sym = re.sub(r" \(.*\)$", "", sym)
            frames.append(sym)
    if comm is not None:
        yield comm, list(reversed(frames))


def main():
    title = sys.argv[1] if len(sys.argv) > 1 else "flame graph"
    tree = lambda: defaultdict(tree)  # noqa: E731
    root, counts = tree(), defaultdict(int)
    total = 0
    for comm, frames in fold(sys.stdin):
        path = (comm,) + tuple(frames)
        for i in range(1, len(path) + 1):
            counts[path[:i]] += 1
        total += 1
    if not total:
        sys.exit("no samples")
    depth = max(len(p) for p in counts)
    height = (depth + 3) * ROW
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="monospace" font-size="11">',
        '<rect width="100%" height="100%" fill="#fafafa"/>',
        f'<text x="6" y="14" font-size="13">{html.escape(title)} ({total} samples)</text>',
    ]
    # Lay out children left to right under each parent, sorted by name.
    children = defaultdict(list)
    for p in counts:
        children[p[:-1]].append(p)
    def draw(path, x, level):
        w = counts[path] / total * WIDTH
        if w < MIN_PX:
            return
        y = height - (level + 1) * ROW
        name = path[-1]
        h = sum(name.encode()) * 2654435761 % 997  # stable across runs
        hue = 20 + h % 40
        kernel = name.startswith(("[k]", "entry_", "do_syscall")) or "kallsyms" in name
        fill = f"hsl({200 if kernel else hue},70%,{60 + h % 15}%)"
        pct = 100.0 * counts[path] / total
        label = html.escape(name)
        out.append(
            f'<g><title>{label} ({counts[path]} samples, {pct:.1f}%)</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{ROW - 1}" fill="{fill}"/>'
        )
        chars = int(w / 7)
        if chars > 3:
            text = name if len(name) <= chars else name[: chars - 2] + ".."
            out.append(f'<text x="{x + 2:.2f}" y="{y + 11}">{html.escape(text)}</text>')
        out.append("</g>")
        cx = x
        for c in sorted(children[path]):
            draw(c, cx, level + 1)
            cx += counts[c] / total * WIDTH
    x = 0.0
    for top in sorted(children[()]):
        draw(top, x, 0)
        x += counts[top] / total * WIDTH
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
