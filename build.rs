//! Link-time settings of the `gatehouse` binary (issue 13: its resident set
//! must not exceed the OpenSSH client's).
//!
//! Packed relative relocations (`-z pack-relative-relocs`, DT_RELR): a
//! position-independent Rust binary carries ~13,000 relative relocations,
//! 320 KB of `.rela.dyn` that ld.so reads at every start, and those pages
//! stayed resident for the whole session. Packed, they are 4 KB; the
//! measured peak RSS of a session fell by ~0.4 MiB (BENCHMARKS.md). It
//! needs glibc 2.36 to run (the binary then requires GLIBC_ABI_DT_RELR,
//! which the package's shlibs dependency states) and binutils 2.38 to
//! link, so it is only asked for when the build host's glibc is 2.36 or
//! newer (Debian 12 has 2.36 and binutils 2.40); elsewhere the binary is
//! linked as before.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let gnu_linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let host = std::env::var("HOST").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    if gnu_linux && host == target && glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// `getconf GNU_LIBC_VERSION` prints `glibc 2.36`.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.split_whitespace().nth(1) else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}
