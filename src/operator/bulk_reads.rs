//! Bulk output: while the target streams, the relay reads its socket in
//! batches instead of once per arriving segment.
//!
//! Every layer of the bastion path moves data in pieces of about 4 KiB:
//! the target's sshd reads its pty that much at a time and sends each
//! piece as it comes; read as it arrives, each piece wakes the relay,
//! becomes one write to the operator's pty, and wakes the bastion's sshd
//! for one read and one packet of its own (about 300 wake-ups per MB in
//! each process, measured). Once output has been flowing hard
//! (`ENTER_BYTES` within `ENTER_WINDOW`), the relay sets the socket's
//! receive low-water mark (`SO_RCVLOWAT`) to `BATCH`: poll(2) then reports
//! it only when that much is waiting, and waits at most `HOLD_MS` for it,
//! so the last bytes of a burst are never held longer than that. The pty
//! then gets whole batches and sshd reads it a full buffer at a time: the
//! bastion spends about a quarter less CPU per GB than before, and than
//! nested OpenSSH (BENCHMARKS.md).
//!
//! Interactive use never sees it: a keystroke, or a turn that found
//! nothing to read, turns it off (`SO_RCVLOWAT` back to 1) before the
//! next wait, so echo and prompts go out as soon as they arrive.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// The low-water mark while output streams: two 8 KiB pty buffers' worth.
pub const BATCH: i32 = 16 * 1024;
/// The longest a wait lasts while batching: the most the tail of a burst
/// can be held (poll(2) counts whole milliseconds).
pub const HOLD_MS: u8 = 1;
/// Output this large within `ENTER_WINDOW` is a stream (6.4 MB/s); a
/// screen redraw or a command's answer is far below it.
const ENTER_BYTES: u64 = 64 * 1024;
const ENTER_WINDOW: Duration = Duration::from_millis(10);

/// What the relay must do to its socket after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowWater {
    /// Set `SO_RCVLOWAT` to `BATCH`.
    Batch,
    /// Set `SO_RCVLOWAT` back to 1.
    Single,
}

#[derive(Debug)]
pub struct BulkReads {
    batching: bool,
    window_start: Instant,
    window_bytes: u64,
}

impl BulkReads {
    pub fn new(now: Instant) -> BulkReads {
        BulkReads {
            batching: false,
            window_start: now,
            window_bytes: 0,
        }
    }

    /// The relay drained the channel: `n` bytes of output this turn.
    pub fn drained(&mut self, n: u64, now: Instant) -> Option<LowWater> {
        if self.batching {
            // Nothing at all since the last wait: the stream paused or
            // ended, so whatever comes next may be someone's prompt.
            return (n == 0).then(|| self.stop(now));
        }
        if now.saturating_duration_since(self.window_start) >= ENTER_WINDOW {
            self.window_start = now;
            self.window_bytes = 0;
        }
        self.window_bytes += n;
        if self.window_bytes >= ENTER_BYTES {
            self.batching = true;
            return Some(LowWater::Batch);
        }
        None
    }

    /// The operator typed: whatever answers it goes out as it arrives.
    pub fn typed(&mut self, now: Instant) -> Option<LowWater> {
        if self.batching {
            return Some(self.stop(now));
        }
        None
    }

    /// The cap on the next wait, in milliseconds, while batching.
    pub fn hold_ms(&self) -> Option<u8> {
        self.batching.then_some(HOLD_MS)
    }

    /// The mark could not be set back to 1: keep the waits capped.
    pub fn keep_batching(&mut self) {
        self.batching = true;
    }

    fn stop(&mut self, now: Instant) -> LowWater {
        self.batching = false;
        self.window_start = now;
        self.window_bytes = 0;
        LowWater::Single
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_fast_stream_turns_batching_on_and_a_quiet_turn_turns_it_off() {
        let t = Instant::now();
        let mut b = BulkReads::new(t);
        assert_eq!(b.hold_ms(), None);
        assert_eq!(b.drained(32 * 1024, t), None);
        assert_eq!(b.drained(31 * 1024, t + MS), None);
        assert_eq!(b.drained(1024, t + 2 * MS), Some(LowWater::Batch));
        assert_eq!(b.hold_ms(), Some(HOLD_MS));
        // Batches keep it on; telling it again would be a wasted syscall.
        assert_eq!(b.drained(BATCH as u64, t + 3 * MS), None);
        assert_eq!(b.drained(100, t + 4 * MS), None);
        assert_eq!(b.drained(0, t + 5 * MS), Some(LowWater::Single));
        assert_eq!(b.hold_ms(), None);
        assert_eq!(b.drained(0, t + 6 * MS), None);
    }

    #[test]
    fn slow_or_interactive_output_never_batches() {
        let t = Instant::now();
        let mut b = BulkReads::new(t);
        // 60 KiB every 10 ms is 6 MB/s: below the mark, for a long time.
        for i in 0..1000u32 {
            assert_eq!(b.drained(60 * 1024, t + i * 10 * MS), None, "{i}");
        }
        // Keystroke echoes, a prompt, a screen redraw.
        for (i, n) in [1u64, 1, 30, 4000, 12_000, 1].into_iter().enumerate() {
            assert_eq!(b.drained(n, t + (20_000 + i as u32) * MS), None);
        }
        assert_eq!(b.hold_ms(), None);
    }

    #[test]
    fn a_keystroke_turns_batching_off_and_the_count_starts_again() {
        let t = Instant::now();
        let mut b = BulkReads::new(t);
        assert_eq!(b.typed(t), None);
        assert_eq!(b.drained(ENTER_BYTES, t), Some(LowWater::Batch));
        assert_eq!(b.typed(t + MS), Some(LowWater::Single));
        assert_eq!(b.hold_ms(), None);
        assert_eq!(b.typed(t + MS), None);
        // The bytes before the keystroke do not count towards the next.
        assert_eq!(b.drained(ENTER_BYTES - 1, t + 2 * MS), None);
        assert_eq!(b.drained(1, t + 3 * MS), Some(LowWater::Batch));
    }

    #[test]
    fn bytes_older_than_the_window_do_not_count() {
        let t = Instant::now();
        let mut b = BulkReads::new(t);
        assert_eq!(b.drained(ENTER_BYTES - 1, t), None);
        assert_eq!(b.drained(1, t + ENTER_WINDOW), None);
        assert_eq!(b.drained(ENTER_BYTES - 2, t + ENTER_WINDOW + MS), None);
        assert_eq!(
            b.drained(1, t + ENTER_WINDOW + 2 * MS),
            Some(LowWater::Batch)
        );
    }
}
