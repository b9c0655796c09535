#!/bin/sh
# The tree's layering (docs/architecture.md, "The three sides"), checked
# with grep so that a new import across a boundary fails `make lint`:
#   src/core/      imports nothing outside src/core/
#   src/operator/  never imports src/admin/
#   src/admin/     never imports src/operator/
#   shared (src/*.rs but lib.rs, src/audit/) imports neither side.
# Comment lines are skipped: a comment may point at another file.
set -u
cd "$(dirname "$0")/.."
fail=0
check() { # $1 = description, $2 = files, $3 = forbidden pattern
    hits=$(grep -nE "$3" $2 /dev/null | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
    if [ -n "$hits" ]; then
        echo "layers: $1" >&2
        echo "$hits" >&2
        fail=1
    fi
}
core=$(find src/core -name '*.rs')
operator=$(find src/operator -name '*.rs')
admin=$(find src/admin -name '*.rs')
shared=$(find src -maxdepth 1 -name '*.rs' ! -name lib.rs ! -name main.rs; find src/audit -name '*.rs')
check "src/core imports only src/core" "$core" 'crate::(admin|operator|audit|identity|live|privilege|process|recording|report|sys|tty)\b'
check "src/operator never imports src/admin" "$operator" 'crate::admin\b'
check "src/admin never imports src/operator" "$admin" 'crate::operator\b'
check "shared modules import neither side" "$shared" 'crate::(admin|operator)\b'
[ $fail -eq 0 ] && echo "layers: core, operator, admin and shared are kept apart"
exit $fail
