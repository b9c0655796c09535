//! The command normalizer eats operator input at every Enter: any text
//! gives a bounded list of simple commands, never a panic, a hang or a
//! stack overflow.
#![no_main]

use gatehouse::core::command_policy::normalize::{normalize, MAX_COMMANDS, MAX_OUTPUT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let n = normalize(&text);
    assert!(n.commands.len() <= MAX_COMMANDS);
    assert!(n.commands.iter().map(|c| c.len()).sum::<usize>() <= MAX_OUTPUT);
    // Deterministic: the relay and `check --explain` must agree.
    assert_eq!(normalize(&text), n);
});
