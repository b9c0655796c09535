#!/usr/bin/env bash
# `make demo`: try Gatehouse on this machine, nothing installed system-wide.
#
# Starts a throwaway OpenSSH server on loopback (a plain bash behind a fixed
# prompt, like the test fixture), writes .demo/config.toml with three hosts
# (two reach that server, one is offline), runs Gatehouse in the foreground,
# then shows the audit trail it wrote (the `gatehouse audit` table) and the
# exact command that replays the last session. The sshd is stopped on every
# exit path.
#
#   scripts/demo.sh              the demo
#   scripts/demo.sh --selfcheck  set up, prove the target answers with the
#                                generated keys and known_hosts, do not run
#                                Gatehouse
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO=$ROOT/.demo
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

selfcheck=0
[ "${1-}" = "--selfcheck" ] && selfcheck=1

bash scripts/deps.sh
if [ $selfcheck -eq 0 ]; then
    cargo build --release
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/gatehouse

# A previous demo that was killed hard may have left its sshd behind.
if [ -f "$DEMO/sshd.pid" ]; then
    kill "$(cat "$DEMO/sshd.pid")" 2>/dev/null || true
fi
rm -rf "$DEMO"
mkdir -p "$DEMO/home" "$DEMO/log"
chmod 700 "$DEMO"

USER_NAME=$(id -un)
ssh-keygen -q -t ed25519 -N "" -C gatehouse-demo-host -f "$DEMO/ssh_host_ed25519_key"
ssh-keygen -q -t ed25519 -N "" -C gatehouse-demo-client -f "$DEMO/client_ed25519"
cp "$DEMO/client_ed25519.pub" "$DEMO/authorized_keys"

# The target's shell: bash with no rc files, a fixed prompt, HOME in .demo.
cat >"$DEMO/target-shell.sh" <<SH
#!/bin/sh
if [ -n "\$SSH_ORIGINAL_COMMAND" ]; then
  exec env HOME='$DEMO/home' HISTFILE='$DEMO/home/.bash_history' PS1='demo-target\$ ' PS2='> ' bash --norc --noprofile -c "\$SSH_ORIGINAL_COMMAND"
fi
exec env HOME='$DEMO/home' HISTFILE='$DEMO/home/.bash_history' PS1='demo-target\$ ' PS2='> ' bash --norc --noprofile -i
SH
chmod 755 "$DEMO/target-shell.sh"

# Is anything listening on 127.0.0.1:$1?
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
random_port() { echo $((20000 + RANDOM % 40000)); }

SSHD_PID=
cleanup() {
    if [ -n "$SSHD_PID" ]; then
        # Per-connection sshd processes first (children of the listener), then it.
        pkill -P "$SSHD_PID" 2>/dev/null || true
        kill "$SSHD_PID" 2>/dev/null || true
        wait "$SSHD_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

[ "$(id -u)" -eq 0 ] && mkdir -p /run/sshd # privilege-separation dir

PORT=
for _ in 1 2 3 4 5 6 7 8 9 10; do
    p=$(random_port)
    listening "$p" && continue
    cat >"$DEMO/sshd_config" <<CFG
ListenAddress 127.0.0.1
Port $p
HostKey $DEMO/ssh_host_ed25519_key
PidFile $DEMO/sshd.pid
AuthorizedKeysFile $DEMO/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel VERBOSE
PrintMotd no
PrintLastLog no
UseDNS no
ForceCommand $DEMO/target-shell.sh
CFG
    : >"$DEMO/sshd.log"
    /usr/sbin/sshd -D -e -E "$DEMO/sshd.log" -f "$DEMO/sshd_config" </dev/null &
    SSHD_PID=$!
    # Ready when the log says so (then the port is ours); bounded wait.
    for _ in $(seq 200); do
        grep -q "Server listening on 127.0.0.1 port $p" "$DEMO/sshd.log" && { PORT=$p; break; }
        kill -0 "$SSHD_PID" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$PORT" ] && break
    kill "$SSHD_PID" 2>/dev/null || true
    wait "$SSHD_PID" 2>/dev/null || true
    SSHD_PID=
done
if [ -z "$PORT" ]; then
    echo "demo: could not start sshd; its log:" >&2
    cat "$DEMO/sshd.log" >&2
    exit 1
fi

OFFLINE_PORT=$(random_port)
while listening "$OFFLINE_PORT" || [ "$OFFLINE_PORT" = "$PORT" ]; do OFFLINE_PORT=$(random_port); done

echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DEMO/ssh_host_ed25519_key.pub")" >"$DEMO/known_hosts"

cat >"$DEMO/config.toml" <<TOML
# Written by scripts/demo.sh (rewritten at every run). The format: README.md,
# "Configuration", and packaging/config.toml.example (every setting, commented).
[settings]
log_dir = "$DEMO/log"
known_hosts = "$DEMO/known_hosts"
host_key_policy = "strict"
idle_timeout = "30m"

[[hosts]]
name = "web01"
address = "127.0.0.1"
port = $PORT
user = "$USER_NAME"
key = "$DEMO/client_ed25519"
description = "demo web server"
groups = ["web"]

[[hosts]]
name = "db01"
address = "127.0.0.1"
port = $PORT
user = "$USER_NAME"
key = "$DEMO/client_ed25519"
description = "demo database"
groups = ["db"]

[[hosts]]
name = "offline01"
address = "127.0.0.1"
port = $OFFLINE_PORT
user = "$USER_NAME"
key = "$DEMO/client_ed25519"
description = "nothing listens here (shows the unreachable-host error)"

[[access]]
users = ["$USER_NAME"]
hosts = ["*"]

# Try them: 'rm -rf /tmp/anything' is blocked, 'reboot' asks for the
# host's name first.
[[policy]]
name = "no-recursive-rm"
action = "deny"
commands = ['^rm\s+-\w*r']
message = "Recursive rm is not allowed in the demo."

[[policy]]
name = "confirm-reboot"
action = "confirm"
commands = ['^(reboot|shutdown)\b']
TOML

if [ $selfcheck -eq 1 ]; then
    # Interactively, through a pty (-tt), as Gatehouse will use it.
    out=$(printf 'echo demo-$((40+2))\nexit\n' | timeout 20 ssh -tt -F /dev/null -p "$PORT" \
        -i "$DEMO/client_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$DEMO/known_hosts" \
        "$USER_NAME@127.0.0.1" 2>&1 | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g')
    echo "$out"
    if [[ "$out" != *'demo-target$ '* || "$out" != *$'\ndemo-42'* ]]; then
        echo "demo selfcheck: unexpected answer" >&2
        exit 1
    fi
    echo "demo selfcheck: sshd on 127.0.0.1:$PORT answers with the generated key and known_hosts"
    exit 0
fi

cat <<BANNER

  Gatehouse demo
  --------------
  A throwaway sshd listens on 127.0.0.1:$PORT; config: .demo/config.toml
  - pick web01 or db01 (arrows or type to filter, Enter), run a few commands,
    then 'exit' to return to the menu;
  - offline01 shows what an unreachable host looks like;
  - the policy blocks 'rm -r…' and asks before 'reboot' (config.toml, [[policy]]);
  - Esc, Ctrl-D or the quit entry leaves; Ctrl-C, Ctrl-Z and Ctrl-\\ are ignored at the menu;
  - inside a session, ~. at the start of a line disconnects (as in ssh).
  Every command lands in .demo/log/$USER_NAME.jsonl; when you quit, the demo
  shows it with 'gatehouse audit' and prints the command that replays it.

BANNER

if [ ! -t 0 ] || [ ! -t 1 ]; then
    echo "demo: Gatehouse needs a terminal; run 'make demo' from an interactive shell" >&2
    exit 1
fi

status=0
# A no-op trap (not an ignore: Gatehouse must inherit default handlers) so a
# Ctrl-C that reaches this script does not skip printing the audit trail.
trap ':' INT
GATEHOUSE_CONFIG="$DEMO/config.toml" "$BIN" || status=$?

# What was recorded, the way an admin reads it. Paths relative to the
# checkout, so the commands can be pasted as they are.
GH=${BIN#"$ROOT"/}
CFG=.demo/config.toml
echo
echo "== what Gatehouse recorded (gatehouse exited with $status) =="
echo "\$ $GH audit --config $CFG"
"$BIN" audit --config "$DEMO/config.toml" || true
# The last session and its short id (the SESSION column above).
last=$("$BIN" audit --config "$DEMO/config.toml" --event session_start --json 2>/dev/null | tail -n 1)
session=$(printf '%s' "$last" | sed -n 's/.*"session":"\([^"]*\)".*/\1/p')
host=$(printf '%s' "$last" | sed -n 's/.*"host":"\([^"]*\)".*/\1/p')
echo
if [ -n "$session" ]; then
    echo "Replay your last session (on $host) as it looked on your screen:"
    echo "  $GH replay --config $CFG ${session: -8}"
    echo "The raw records: .demo/log/$USER_NAME.jsonl (one JSON object per line)."
else
    echo "No session was opened, so nothing to replay: pick web01 next time."
fi
