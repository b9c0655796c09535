#!/usr/bin/env python3
"""Report Rust functions longer than a limit (default 100 lines).

Warning-only (exit 0): issue 16 asks for no function over ~100 lines
without a reason written above it. A function whose preceding comment
lines contain "long:" is listed as kept, with that reason.

Usage: scripts/long-fns.py [LIMIT] [PATH...]   (default: 100 src)

Counting is lexical: a line starting a `fn` item, then braces matched
while skipping strings, chars, raw strings and comments. `#[cfg(test)]`
modules are skipped (tests are listed only with --tests).
"""
import os
import re
import sys

FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+"[^"]*"\s+)?fn\s+([A-Za-z_][A-Za-z0-9_]*)')


def strip(src):
    """Replace the contents of strings, chars and comments with spaces
    (newlines kept) so that braces in them do not count."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith('//', i):
            j = src.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif src.startswith('/*', i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith('/*', j):
                    depth, j = depth + 1, j + 2
                elif src.startswith('*/', j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r'[^\n]', ' ', src[i:j]))
            i = j
        elif (c == 'r' or src.startswith('br', i)) and re.match(r'b?r#*"', src[i:i + 40]) \
                and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == '_')):
            m = re.match(r'b?r(#*)"', src[i:])
            close = '"' + m.group(1)
            j = src.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            out.append(re.sub(r'[^\n]', ' ', src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == '\\' else 1
            j += 1
            out.append(re.sub(r'[^\n]', ' ', src[i:j]))
            i = j
        elif c == "'":
            # a char literal ('x', '\n', '\u{..}') or a lifetime ('a)
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", src[i:])
            if m:
                out.append(' ' * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def functions(path, tests):
    text = open(path, encoding='utf-8').read()
    raw = text.split('\n')
    lines = strip(text).split('\n')
    skip_until = -1
    i = 0
    while i < len(lines):
        line = lines[i]
        if not tests and re.match(r'\s*#\[cfg\(test\)\]', line) and i + 1 < len(lines) \
                and re.match(r'\s*(pub\s+)?mod\s', lines[i + 1]):
            i = block_end(lines, i + 1) + 1
            continue
        m = FN.match(line)
        if m and i > skip_until:
            end = block_end(lines, i)
            if end is not None:
                reason = None
                k = i - 1
                while k >= 0 and raw[k].strip().startswith(('//', '#[')):
                    if 'long:' in raw[k]:
                        # The reason and the plain comment lines under it.
                        parts = [raw[k].split('long:', 1)[1].strip()]
                        for j in range(k + 1, i):
                            t = raw[j].strip()
                            if not t.startswith('//') or t.startswith('///'):
                                break
                            parts.append(t[2:].strip())
                        reason = ' '.join(parts)
                        break
                    k -= 1
                yield m.group(7), i + 1, end - i + 1, reason
        i += 1


def block_end(lines, start):
    """Index of the line closing the first `{` at or after `start`, or
    None for a declaration without a body (`fn f();`)."""
    depth, opened = 0, False
    for j in range(start, len(lines)):
        for ch in lines[j]:
            if ch == '{':
                depth, opened = depth + 1, True
            elif ch == '}':
                depth -= 1
                if opened and depth == 0:
                    return j
            elif ch == ';' and not opened and depth == 0:
                return None
    return None


def main(argv):
    tests = '--tests' in argv
    argv = [a for a in argv if a != '--tests']
    limit = int(argv[0]) if argv and argv[0].isdigit() else 100
    roots = [a for a in argv if not a.isdigit()] or ['src']
    found = []
    for root in roots:
        files = [root] if root.endswith('.rs') else sorted(
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith('.rs'))
        for path in files:
            for name, line, length, reason in functions(path, tests):
                if length > limit:
                    found.append((length, path, line, name, reason))
    for length, path, line, name, reason in sorted(found, reverse=True):
        note = f'  kept: {reason}' if reason else ''
        print(f'long-fns: {path}:{line} {name} {length} lines{note}')
    unexplained = sum(1 for f in found if not f[4])
    print(f'long-fns: {len(found)} functions over {limit} lines, {unexplained} without a reason (warning only)')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
