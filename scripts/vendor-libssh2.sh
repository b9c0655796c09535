#!/usr/bin/env bash
# Re-create vendor/libssh2-sys from a published libssh2-sys crate and apply
# this project's patch (vendor/libssh2-sys.patch; why: vendor/README.md).
#
#   scripts/vendor-libssh2.sh 0.3.4          # the version to vendor
#   scripts/vendor-libssh2.sh --check        # vendor/ is exactly the vendored version + the patch
#                                            # (make lint)
#
# The crate is fetched by cargo into its registry cache; only the files
# its build.rs compiles or reads are kept, with the licences. Then build
# and run `cargo test --test transport` (and the whole suite).
set -euo pipefail
check=no
if [ "${1:-}" = --check ]; then check=yes; shift; fi
root=$(cd "$(dirname "$0")/.." && pwd)
# Default: the version vendored now.
version=${1:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/vendor/libssh2-sys/Cargo.toml" | head -n 1)}
patchfile=$root/vendor/libssh2-sys.patch

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$root/vendor/libssh2-sys
[ $check = yes ] && dest=$work/libssh2-sys
registry() { ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"libssh2-sys-$version" 2>/dev/null | head -n 1; }
src=$(registry)
if [ -z "$src" ]; then
    # A throwaway crate that depends on exactly that version, to make cargo
    # download and unpack it.
    mkdir -p "$work/fetch/src"
    printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nlibssh2-sys = "=%s"\n' \
        "$version" >"$work/fetch/Cargo.toml"
    : >"$work/fetch/src/lib.rs"
    (cd "$work/fetch" && cargo fetch --quiet)
    src=$(registry)
fi
[ -n "$src" ] && [ -f "$src/build.rs" ] || { echo "libssh2-sys $version not found in the cargo registry" >&2; exit 1; }

rm -rf "$dest"
mkdir -p "$dest/libssh2/src" "$dest/libssh2/include"
cp "$src"/{Cargo.toml,build.rs,lib.rs,LICENSE-APACHE,LICENSE-MIT,.cargo_vcs_info.json} "$dest/"
cp "$src"/libssh2/{COPYING,libssh2.pc.in,README,RELEASE-NOTES} "$dest/libssh2/"
cp -r "$src/libssh2/LICENSES" "$dest/libssh2/"
cp "$src"/libssh2/include/*.h "$dest/libssh2/include/"
cp "$src"/libssh2/src/*.c "$src"/libssh2/src/*.h "$src/libssh2/src/libssh2_config_cmake.h.in" \
    "$dest/libssh2/src/"
patch -s -d "$dest" -p1 --no-backup-if-mismatch <"$patchfile"
if [ $check = yes ]; then
    if ! diff -r "$dest" "$root/vendor/libssh2-sys"; then
        echo "vendor/libssh2-sys is not libssh2-sys $version + vendor/libssh2-sys.patch:" >&2
        echo "change the patch, then re-run scripts/vendor-libssh2.sh $version" >&2
        exit 1
    fi
    echo "vendor/libssh2-sys = libssh2-sys $version + vendor/libssh2-sys.patch"
    exit 0
fi
echo "vendored libssh2-sys $version with vendor/libssh2-sys.patch into $dest"
