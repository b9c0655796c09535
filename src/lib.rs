//! Gatehouse: an auditing jump-host login shell.
pub mod capture;

pub fn run() -> i32 {
    0
}
