#!/usr/bin/env python3
"""Record real bash sessions for the capture corpus.

Runs `bash --norc --noprofile -i` in a real pty (80x24, TERM=xterm) with
PS1='tgt$ ', PS2='> ' and a private HISTFILE, plays a script of keystrokes
with human-like pauses (or as one chunk, for type-ahead and paste), and
writes every byte in both directions, in the order they happened, to
tests/corpus/<name>.json:

    {
      "name": "...", "description": "...", "cols": 80, "rows": 24,
      "events": [["o", "<base64 output chunk>"], ["i", "<base64 input chunk>"],
                 ["r", cols, rows]],
      "expected": ["command text", ...],         # exact, in order
      "secret": "..."                            # optional: must be in no command
    }

Usage: python3 tests/corpus/record.py [name ...]   (all scenarios by default)
"""

import base64
import json
import os
import pty
import select
import struct
import sys
import tempfile
import time
import fcntl
import termios

HERE = os.path.dirname(os.path.abspath(__file__))

ESC = "\x1b"
UP = ESC + "[A"
LEFT = ESC + "[D"
PASTE_BEGIN = ESC + "[200~"
PASTE_END = ESC + "[201~"


class Session:
    def __init__(self, cols=80, rows=24):
        self.cols, self.rows = cols, rows
        self.events = []
        self.tmp = tempfile.mkdtemp(prefix="gh-corpus-")
        os.makedirs(os.path.join(self.tmp, "work"))
        with open(os.path.join(self.tmp, "work", "unique_corpus_file.txt"), "w") as f:
            f.write("hello from the corpus\n")
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": self.tmp,
            "TERM": "xterm",
            "PS1": "tgt$ ",
            "PS2": "> ",
            "HISTFILE": os.path.join(self.tmp, "hist"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "LESS": "",
            "PAGER": "less",
        }
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(os.path.join(self.tmp, "work"))
            os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"], env)
        self.pid, self.fd = pid, fd
        self.winsize(cols, rows, record=False)
        self.settle(1.0)

    def winsize(self, cols, rows, record=True):
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        if record:
            self.events.append(["r", cols, rows])

    def pump(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            return False
        if not data:
            return False
        self.events.append(["o", base64.b64encode(data).decode()])
        return True

    def settle(self, quiet=0.25, limit=4.0):
        """Read output until it has been quiet for `quiet` seconds."""
        end = time.time() + limit
        while time.time() < end:
            if not self.pump(quiet):
                return

    def send(self, s):
        data = s.encode() if isinstance(s, str) else s
        self.events.append(["i", base64.b64encode(data).decode()])
        os.write(self.fd, data)

    def type(self, s, delay=0.03):
        """Type key by key (escape sequences as one key), reading echo between."""
        for key in keys_of(s):
            self.send(key)
            self.pump(0)
            end = time.time() + delay
            while time.time() < end and self.pump(max(0, end - time.time())):
                pass
        self.settle()

    def close(self):
        try:
            self.send("exit\r")
            self.settle(0.3, 2.0)
        finally:
            try:
                os.kill(self.pid, 9)
            except OSError:
                pass
            os.waitpid(self.pid, 0)


def keys_of(s):
    i = 0
    while i < len(s):
        if s[i] == ESC and i + 1 < len(s) and s[i + 1] in "[O":
            j = i + 2
            while j < len(s) and not (0x40 <= ord(s[j]) <= 0x7E):
                j += 1
            yield s[i : j + 1]
            i = j + 1
        else:
            yield s[i]
            i += 1


SCENARIOS = {}


def scenario(name, description, expected, secret=None, cols=80, rows=24, unverified=None):
    def wrap(fn):
        SCENARIOS[name] = (description, expected, secret, cols, rows, fn, unverified)
        return fn

    return wrap


@scenario("plain", "plain commands typed key by key", ["echo hello", "pwd"])
def _(s):
    s.type("echo hello\r")
    s.type("pwd\r")


@scenario("backspace", "Backspace (DEL and ^H) edits", ["echo hello", "echo world"])
def _(s):
    s.type("echo hellp\x7fo\r")
    s.type("echo wox\x08rld\r")


@scenario("ctrl_u", "Ctrl-U then retype", ["echo safe"])
def _(s):
    s.type("rm -rf /tmp/nothing-here\x15echo safe\r")


@scenario("ctrl_w", "Ctrl-W kills the previous word", ["echo one three"])
def _(s):
    s.type("echo one two\x17three\r")


@scenario(
    "mid_line",
    "Left arrow, Ctrl-A and Ctrl-E insertion mid-line",
    ["echo world", "echo hi there", "echo abc"],
)
def _(s):
    s.type("echo wrld" + LEFT * 3 + "o\r")
    s.type("cho hi\x01e\x05 there\r")
    s.type("echo ac" + ESC + "ODb\r")


@scenario(
    "tab_complete",
    "Tab completion of a command and of a path",
    ["echo done", "cat unique_corpus_file.txt"],
)
def _(s):
    s.type("ech\tdone\r")
    s.type("cat uniq\t\r")


@scenario(
    "history",
    "Up-arrow recall, and Up Up then edit",
    ["echo first", "echo second", "echo second", "echo first more"],
)
def _(s):
    s.type("echo first\r")
    s.type("echo second\r")
    s.type(UP + "\r")
    s.type(UP + UP + UP + " more\r")


@scenario(
    "reverse_search",
    "Ctrl-R reverse search then Enter",
    ["echo needle123", "echo other", "echo needle123"],
)
def _(s):
    s.type("echo needle123\r")
    s.type("echo other\r")
    s.type("\x12needle", delay=0.08)
    s.type("\r")


@scenario(
    "wrap",
    "a line longer than the terminal width",
    ["echo " + "abcdefghij" * 17],
)
def _(s):
    s.type("echo " + "abcdefghij" * 17 + "\r", delay=0.005)


@scenario("utf8", "UTF-8 text", ["echo héllo 你好"])
def _(s):
    s.type("echo héllo 你好\r")


@scenario(
    "ps2",
    "multi-line for loop typed with PS2 continuation",
    ["for i in 1 2; do\necho $i\ndone", "echo after"],
)
def _(s):
    s.type("for i in 1 2; do\r")
    s.type("echo $i\r")
    s.type("done\r")
    s.type("echo after\r")


@scenario(
    "paste",
    "a bracketed paste of several commands, then Enter (readline runs the paste as one buffer)",
    ["echo p1\necho p2\necho p3", "for i in a b; do\necho $i\ndone\necho p4"],
)
def _(s):
    s.send(PASTE_BEGIN + "echo p1\necho p2\necho p3\n" + PASTE_END)
    s.settle()
    s.type("\r")
    s.send(PASTE_BEGIN + "for i in a b; do\necho $i\ndone\necho p4" + PASTE_END)
    s.settle()
    s.type("\r")


@scenario(
    "paste_no_bracket",
    "several commands pasted in one chunk without bracketed paste",
    ["echo q1", "echo q2", "echo q3"],
)
def _(s):
    s.send("echo q1\recho q2\recho q3\r")
    s.settle()


@scenario("ctrl_c", "Ctrl-C on a half-typed line", ["echo after"])
def _(s):
    s.type("echo half typed\x03")
    s.type("echo after\r")


@scenario(
    "secret_read",
    "read -s password typed key by key, and pasted with its Enter",
    ["read -s -p 'Password: ' x", "echo ok", "read -s -p 'Password: ' y", "echo ok2"],
    secret="Hunter2Secret",
)
def _(s):
    s.type("read -s -p 'Password: ' x\r")
    s.type("Hunter2Secret\r")
    s.type("echo ok\r")
    s.type("read -s -p 'Password: ' y\r")
    s.send("Hunter2Secret\r")
    s.settle()
    s.type("echo ok2\r")


@scenario(
    "secret_stty",
    "a passwd-like prompt with stty -echo",
    ["stty -echo; read -p 'New password: ' z; stty echo; echo", "echo fine"],
    secret="Hunter2Secret",
)
def _(s):
    s.type("stty -echo; read -p 'New password: ' z; stty echo; echo\r")
    s.type("Hunter2Secret\r")
    s.type("echo fine\r")


@scenario(
    "secret_pasted_ahead",
    "command and its password pasted together in one chunk",
    # bash discards the type-ahead when read switches the tty mode, so the
    # operator then types the real password: neither may be recorded.
    ["read -s -p 'Password: ' x; echo got-it"],
    secret=["Hunter2Secret", "Second9Secret"],
)
def _(s):
    s.send("read -s -p 'Password: ' x; echo got-it\rHunter2Secret\r")
    s.settle()
    s.type("Second9Secret\r")


@scenario(
    "less",
    "less (alternate screen): keys inside are not commands",
    ["less /etc/passwd", "echo back"],
)
def _(s):
    s.type("less /etc/passwd\r")
    s.type("/root\r")
    s.type("j")
    s.type("q")
    s.type("echo back\r")


@scenario(
    "vim",
    "vim (alternate screen): keys inside are not commands",
    ["vim -u NONE -N", "echo back"],
)
def _(s):
    s.type("vim -u NONE -N\r")
    s.type("ihello world\x1b")
    s.type(":q!\r")
    s.type("echo back\r")


@scenario(
    "typeahead",
    "typing during a running command, and fast type-ahead",
    ["sleep 1", "echo ahead", "echo x1", "echo x2"],
)
def _(s):
    s.type("sleep 1\r")
    s.send("echo ahead\r")
    s.settle(0.5, 4.0)
    s.send("echo x1\r")
    s.send("echo x2\r")
    s.settle()


@scenario(
    "resize",
    "window resized between commands, long line at the new width",
    ["echo " + "0123456789" * 6, "echo small"],
)
def _(s):
    s.winsize(40, 20)
    s.settle()
    s.type("echo " + "0123456789" * 6 + "\r", delay=0.005)
    s.winsize(100, 30)
    s.settle()
    s.type("echo small\r")


@scenario(
    "ps2_cancel",
    "Ctrl-C at a PS2 continuation prompt abandons the command",
    ["echo kept"],
)
def _(s):
    s.type("for i in 1 2; do\r")
    s.type("echo $i\r")
    s.type("\x03")
    s.type("echo kept\r")


@scenario(
    "reverse_search_edit",
    "Ctrl-R, then End and more text, then Enter",
    ["echo needle456", "echo needle456 more"],
)
def _(s):
    s.type("echo needle456\r")
    s.type("\x12needle", delay=0.08)
    s.type("\x05 more\r")


@scenario(
    "tab_list",
    "double Tab listing candidates, then completing by hand",
    ["touch unique_corpus_other", "ls unique_corpus_file.txt"],
)
def _(s):
    s.type("touch unique_corpus_other\r")
    s.type("ls uniq\t")
    s.type("\t", delay=0.3)
    s.type("f\t\r")


@scenario(
    "bulk_then_type",
    "a large output (bulk path), then typing again; Ctrl-L redraw",
    ["seq 1 30000", "echo after bulk", "echo cleared"],
)
def _(s):
    s.type("seq 1 30000\r")
    s.settle(0.5, 10.0)
    s.type("echo after bulk\r")
    s.type("\x0cecho cleared\r")


@scenario(
    "wrap_exact",
    "lines that end exactly at, one before and one after the right margin",
    ["echo " + "a" * 70, "echo " + "b" * 69, "echo " + "c" * 71, "echo " + "d" * 150],
)
def _(s):
    s.type("echo " + "a" * 70 + "\r", delay=0.005)
    s.type("echo " + "b" * 69 + "\r", delay=0.005)
    s.type("echo " + "c" * 71 + "\r", delay=0.005)
    s.type("echo " + "d" * 155 + "\x08" * 5 + "\r", delay=0.005)


@scenario(
    "wrap_edit",
    "a wrapped line edited at its start (Ctrl-A) and mid-way (Left arrows)",
    ["echo X" + "0123456789" * 10 + "YZ", "echo start " + "w" * 90],
)
def _(s):
    s.type("cho X" + "0123456789" * 10 + "Z", delay=0.005)
    s.type("\x01e" + "\x05" + LEFT + "Y\r")
    s.type("echo " + "w" * 90 + "\x01" + (ESC + "[C") * 5 + "start \r")


@scenario(
    "resize_while_typing",
    "the window shrinks while a long line is being typed",
    ["echo " + "r" * 60 + " tail"],
)
def _(s):
    s.type("echo " + "r" * 60, delay=0.005)
    s.winsize(50, 20)
    s.settle()
    s.type(" tail\r")


@scenario(
    "clear_screen",
    "clear, then commands on a fresh screen",
    ["clear", "echo top"],
)
def _(s):
    s.type("clear\r")
    s.type("echo top\r")


@scenario(
    "ps2_typeahead",
    "a multi-line loop sent in one chunk without bracketed paste",
    ["for i in 1 2; do\necho $i\ndone", "echo after"],
)
def _(s):
    s.send("for i in 1 2; do\recho $i\rdone\r")
    s.settle()
    s.type("echo after\r")


@scenario(
    "top_main_screen",
    "top paints the main screen with echo off; its keys must not leak into "
    "the next command",
    ["top -d 1", "echo back"],
)
def _(s):
    s.type("top -d 1\r")
    s.settle(0.3, 2.0)
    s.type("h")
    s.settle(0.3, 2.0)
    s.type("q")
    s.settle(0.3, 2.0)
    s.type("q")
    s.type("echo back\r")


@scenario(
    "secret_no_enter",
    "read -s -n 4: a PIN typed without Enter, then a command",
    ["read -s -n 4 pin; echo", "echo back"],
    secret="Pin7",
)
def _(s):
    s.type("read -s -n 4 pin; echo\r")
    s.type("Pin7")
    s.type("echo back\r")


# Issue 9: lines that reached a shell without a record before the Enter
# gate. Each was a regression on the old engine.


@scenario(
    "stty_echo_off",
    "stty -echo at the shell prompt: later commands are commands (unverified), not secrets",
    ["stty -echo", "echo blind-corpus", "stty echo"],
)
def _(s):
    s.type("stty -echo\r")
    s.type("echo blind-corpus\r")
    s.type("stty echo\r")


@scenario(
    "alt_screen_prompt",
    "the alternate screen switched on by output: the shell's prompt is drawn there",
    ["printf '\\033[?1049h'", "echo on-alt", "printf '\\033[?1049l'"],
)
def _(s):
    s.type("printf '\\033[?1049h'\r")
    s.type("echo on-alt\r")
    s.type("printf '\\033[?1049l'\r")


@scenario(
    "intr_undef",
    "stty intr undef: a Ctrl-C that does not cancel; the shell runs the whole line",
    ["stty intr undef", ": corpus-a ; echo hi-intr"],
)
def _(s):
    s.type("stty intr undef\r")
    s.type(": corpus-a")
    s.type("\x03")
    s.type(" ; echo hi-intr\r")


@scenario(
    "ps2_custom",
    "a for loop with a PS2 other than '> '",
    ["PS2='cont> '", "for i in 1 2; do\necho $i\ndone"],
)
def _(s):
    s.type("PS2='cont> '\r")
    s.type("for i in 1 2; do\r")
    s.type("echo $i\r")
    s.type("done\r")


@scenario(
    "heredoc",
    "a here-document is one command with its body",
    ["cat <<EOF\nbody line\nEOF"],
)
def _(s):
    s.type("cat <<EOF\r")
    s.type("body line\r")
    s.type("EOF\r")


@scenario("ctrl_v_tab", "Ctrl-V Tab inserts a literal tab", ["echo a\tb"])
def _(s):
    s.type("echo a\x16\tb\r")


@scenario(
    "long_line",
    "a 10,000-character line pasted in one chunk",
    ["echo " + "b" * 10000],
)
def _(s):
    s.send("echo " + "b" * 10000 + "\r")
    s.settle(0.5, 8.0)


@scenario(
    "invalid_utf8",
    "bytes that are not UTF-8 in a line: U+FFFD, and the record is kept",
    ["echo inv\ufffd\ufffdX"],
)
def _(s):
    s.type("echo inv")
    s.send(b"\xff\xfe")
    s.settle()
    s.type("X\r")


@scenario(
    "less_bang",
    "a shell escape from less",
    ["less unique_corpus_file.txt", "echo from-less"],
)
def _(s):
    s.type("less unique_corpus_file.txt\r")
    s.settle(0.5)
    s.type("!echo from-less\r")
    s.settle(0.5)
    s.type("\r")
    s.type("q")


@scenario(
    "vi_mode",
    "bash in vi editing mode: recall with Esc k, x, a; 0cw changes a word",
    ["set -o vi", "echo vi-one", "echo vi-on9", "echo vi-two", "set -o emacs"],
)
def _(s):
    s.type("set -o vi\r")
    s.type("echo vi-one\r")
    s.type(ESC + "k$xa9\r")
    s.type("true vi-two" + ESC + "0cwecho\r")
    s.type("set -o emacs\r")


@scenario(
    "vi_mode_burst",
    "bash vi mode, the edit sent in one burst (a paste, tmux send-keys): Esc k 0 w cw … Esc Enter",
    ["set -o vi", "echo vi-one", "echo echo2-one", "set -o emacs"],
)
def _(s):
    s.type("set -o vi\r")
    s.type("echo vi-one\r")
    s.send(ESC + "k0wcwecho2" + ESC + "\r")
    s.settle()
    s.type("set -o emacs\r")


@scenario(
    "emacs_esc_enter",
    "bash emacs mode, Esc and Enter together (Alt-Enter): readline rings the bell and the line stays; the Enter after it runs it",
    ["echo esc-aa", "echo esc-aa"],
    unverified=["echo esc-aa"],
)
def _(s):
    s.send("echo esc-aa\x1b\r")
    s.settle()
    s.type("\r")


@scenario(
    "recall_cursor_left",
    "history recall, cursor moved left (Left, Ctrl-A), then Enter: the whole line runs",
    ["echo left-one", "echo left-one", "echo left-one"],
)
def _(s):
    s.type("echo left-one\r")
    s.type(UP + LEFT + LEFT + LEFT + "\r")
    s.type(UP + "\x01\r")


@scenario(
    "readline_kill_yank",
    "readline kill ring and word commands: Ctrl-Y, Alt-f, Ctrl-K, Alt-b, Alt-u, Alt-t, Ctrl-T, Ctrl-_ undo, Alt-.; the undo empties the line, and an Enter on a line the screen shows empty after edits is still recorded from the keys (verified: false): an empty-looking line is never taken as proof that nothing ran",
    [
        "echo yank-a yank-b",
        "echo kept",
        "echo two ONE",
        "echo ab",
        "echo undonex\x1f",
        "echo ab",
    ],
    unverified=["echo undonex\x1f"],
)
def _(s):
    # Ctrl-U kills the line, Ctrl-Y yanks it back, then more is typed.
    s.type("echo yank-a\x15\x19 yank-b\r")
    # Ctrl-A, Alt-f moves over `echo`, Ctrl-K kills the rest, type " kept".
    s.type("echo gone-text\x01" + ESC + "f\x0b kept\r")
    # Alt-b Alt-b to `one`, Alt-u upcases it, Alt-t transposes words.
    s.type("echo one two" + ESC + "b" + ESC + "b" + ESC + "u" + ESC + "t\r")
    # Ctrl-T transposes characters: "echo ba" -> "echo ab".
    s.type("echo ba\x14\r")
    # Ctrl-_ undoes the typed group: the line is empty on screen, and the
    # record comes from the keys, unverified (never silently absent).
    s.type("echo undonex\x1f\r")
    # Alt-. inserts the last argument of the previous command.
    s.type("echo " + ESC + ".\r")


@scenario(
    "fake_prompt_mid_line",
    "a background job draws a fake prompt while a line is typed: the shell runs the whole line; the screen shows a prompt after its start and only its end after that. Both halves are recorded unverified (the first when the prompt showed, the second at Enter; policy sees them joined) — never the end alone as verified",
    ["(sleep 1; printf '\\r\\ntgt$ ') &", "echo sp", "lit-x"],
    unverified=["echo sp", "lit-x"],
)
def _(s):
    s.type("(sleep 1; printf '\\r\\ntgt$ ') &\r")
    s.type("echo sp")
    s.settle(1.5, 3.0)
    time.sleep(1.2)
    s.settle(0.3, 1.0)
    s.type("lit-x\r")


@scenario(
    "accept_line_rebound",
    "a key bound to accept-line (bind '\"\\C-t\": accept-line'): the line runs without an Enter; it is recorded when the next prompt shows it ran (unverified), never lost",
    ["bind '\"\\C-t\": accept-line'", "echo bound-x", "echo next"],
    unverified=["echo bound-x", "echo next"],
)
def _(s):
    s.type("bind '\"\\C-t\": accept-line'\r")
    s.type("echo bound-x\x14")
    s.type("echo next\r")


@scenario(
    "ctrl_o_operate",
    "Ctrl-O (operate-and-get-next) runs a recalled line and loads the next one; Enter then runs that one with no key typed",
    ["echo o1", "echo o2", "echo o1", "echo o2"],
    unverified=[],
)
def _(s):
    s.type("echo o1\r")
    s.type("echo o2\r")
    s.type(UP + UP + "\x0f")
    s.type("\r")


@scenario(
    "echo_off_ignored_ctrl_c",
    "echo off and `stty intr undef`: Ctrl-C is a key readline ignores, so the line is still there at Enter; the keys model clears it and the Enter looks empty",
    ["stty -echo intr undef", "touch rt_ran_ctrl_c", "stty echo intr ^C", "ls rt_ran_ctrl_c"],
    unverified=["touch rt_ran_ctrl_c", "stty echo intr ^C"],
)
def _(s):
    s.type("stty -echo intr undef\r")
    s.type("touch rt_ran_ctrl_c\x03\r")
    s.type("stty echo intr ^C\r")
    s.type("ls rt_ran_ctrl_c\r")


@scenario(
    "echo_off_ignored_ctrl_c_typed_on",
    "echo off, `stty intr undef`, keys typed after the ignored Ctrl-C: they join the line still in readline",
    ["stty -echo intr undef", "echo rt_one two", "stty echo intr ^C"],
    unverified=["echo rt_one two", "stty echo intr ^C"],
)
def _(s):
    s.type("stty -echo intr undef\r")
    s.type("echo rt_one\x03 two\r")
    s.type("stty echo intr ^C\r")


@scenario(
    "echo_on_ignored_ctrl_c",
    "echo on, `stty intr undef`: the screen still shows the line the ignored Ctrl-C did not clear, and is the witness",
    ["stty intr undef", "echo rt_shown more", "stty intr ^C"],
)
def _(s):
    s.type("stty intr undef\r")
    s.type("echo rt_shown\x03 more\r")
    s.type("stty intr ^C\r")


@scenario(
    "echo_off_ctrl_c_works",
    "echo off with the interrupt intact: Ctrl-C drops the line (the shell goes down a line), and what follows alone runs",
    ["stty -echo", "echo kept", "stty echo"],
    unverified=["echo kept", "stty echo"],
)
def _(s):
    s.type("stty -echo\r")
    s.type("echo dropped\x03")
    s.type("echo kept\r")
    s.type("stty echo\r")


def main(names):
    for name in names or SCENARIOS:
        description, expected, secret, cols, rows, fn, unverified = SCENARIOS[name]
        s = Session(cols, rows)
        try:
            fn(s)
        finally:
            s.close()
        doc = {
            "name": name,
            "description": description,
            "cols": cols,
            "rows": rows,
            "events": s.events,
            "expected": expected + ["exit"],
        }
        if secret:
            doc["secret"] = secret
        if unverified:
            doc["unverified"] = unverified
        with open(os.path.join(HERE, name + ".json"), "w") as f:
            json.dump(doc, f, indent=0, ensure_ascii=False)
            f.write("\n")
        print("recorded", name, len(s.events), "events")


if __name__ == "__main__":
    main(sys.argv[1:])
