//! The capped per-attempt log: keeps the head and the tail of a task's output, drops the middle.
//!
//! This module owns the byte layout of a log file and the memory bound that goes with it. It
//! does no process handling and no async I/O: [`CappedLog`] is a plain synchronous writer over
//! any [`Write`] sink, fed chunk by chunk by `runtime::process`.
//!
//! # Layout
//!
//! With a cap of `max_bytes`, the log keeps:
//!
//! - the **head**: the first `max_bytes - tail` bytes, written straight through to the sink;
//! - the **tail**: the last `tail = min(max_bytes / 2, TAIL_MAX_BYTES)` bytes, held in a ring
//!   buffer and written when the log is finished.
//!
//! If the output fits in the cap, the file is an exact copy of it. Otherwise the file is the head,
//! then a line `[petit: N bytes dropped]` (preceded by a newline if the head does not end with
//! one), then the tail. The file is therefore at most `max_bytes + MARKER_MAX_BYTES` bytes.
//!
//! # Memory
//!
//! The only buffer is the tail ring, at most [`TAIL_MAX_BYTES`] (512 KiB) whatever the cap, and
//! allocated only once the head is full. With a large cap the tail is smaller than half of it and
//! the head takes the rest, so the file still uses the whole cap. The output of a task is never
//! held whole in memory.

use std::io::{self, Write};

/// Largest tail kept in memory, in bytes, whatever the cap.
pub const TAIL_MAX_BYTES: usize = 512 * 1024;

/// Upper bound on the length of the dropped-bytes marker, including its newlines.
pub const MARKER_MAX_BYTES: u64 = 64;

/// A writer that keeps the head and the tail of a stream within `max_bytes`.
///
/// Call [`CappedLog::write`] for each chunk, then [`CappedLog::finish`] exactly once; dropping
/// the log without finishing loses the tail.
#[derive(Debug)]
pub struct CappedLog<W: Write> {
    sink: W,
    head_max_bytes: u64,
    head_bytes: u64,
    /// Last byte written to the head, to decide whether the marker needs a leading newline.
    head_last_byte: Option<u8>,
    tail: TailRing,
    total_bytes: u64,
    /// Set after the first failed write to the sink; later output is counted, not stored.
    poisoned: bool,
}

impl<W: Write> CappedLog<W> {
    /// A log writing into `sink`, keeping at most `max_bytes` of output (plus the marker line).
    pub fn new(sink: W, max_bytes: u64) -> Self {
        let tail_max = usize::try_from(max_bytes / 2)
            .unwrap_or(usize::MAX)
            .min(TAIL_MAX_BYTES);
        CappedLog {
            sink,
            head_max_bytes: max_bytes - tail_max as u64,
            head_bytes: 0,
            head_last_byte: None,
            tail: TailRing::new(tail_max),
            total_bytes: 0,
            poisoned: false,
        }
    }

    /// Appends `bytes` of task output.
    ///
    /// An error from the sink is returned once; after it the log is poisoned: later output is
    /// still counted in [`CappedLog::total_bytes`] but neither written nor buffered, so the
    /// caller can keep draining the task's pipe without failing again on every chunk.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        self.total_bytes = self.total_bytes.saturating_add(bytes.len() as u64);
        if self.poisoned {
            return Ok(());
        }
        let head_room = self.head_max_bytes - self.head_bytes;
        if head_room > 0 {
            let n = usize::try_from(head_room)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let (head, rest) = bytes.split_at(n);
            if let Err(err) = self.sink.write_all(head) {
                self.poisoned = true;
                return Err(err);
            }
            self.head_bytes += n as u64;
            if let Some(&last) = head.last() {
                self.head_last_byte = Some(last);
            }
            bytes = rest;
        }
        self.tail.push(bytes);
        Ok(())
    }

    /// Bytes of output seen so far, including any that were dropped.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Bytes of memory held by the tail buffer (its allocated capacity).
    pub fn memory_bytes(&self) -> usize {
        self.tail.buf.capacity()
    }

    /// Writes the marker and the tail, then `trailer` (a note from Petit, one line, if any), and
    /// flushes. Returns the sink.
    ///
    /// A poisoned log writes nothing more; its sink is only flushed.
    pub fn finish(mut self, trailer: Option<&str>) -> io::Result<W> {
        if !self.poisoned {
            let kept = self.head_bytes + self.tail.len() as u64;
            let dropped = self.total_bytes.saturating_sub(kept);
            let mut last_byte = self.head_last_byte;
            if dropped > 0 {
                let mut marker = String::new();
                if last_byte.is_some_and(|b| b != b'\n') {
                    marker.push('\n');
                }
                marker.push_str(&format!("[petit: {dropped} bytes dropped]\n"));
                self.sink.write_all(marker.as_bytes())?;
                last_byte = Some(b'\n');
            }
            let (older, newer) = self.tail.as_slices();
            self.sink.write_all(older)?;
            self.sink.write_all(newer)?;
            if let Some(&b) = newer.last().or(older.last()) {
                last_byte = Some(b);
            }
            if let Some(note) = trailer {
                if last_byte.is_some_and(|b| b != b'\n') {
                    self.sink.write_all(b"\n")?;
                }
                self.sink.write_all(note.as_bytes())?;
                self.sink.write_all(b"\n")?;
            }
        }
        self.sink.flush()?;
        Ok(self.sink)
    }
}

/// The last `max` bytes of a stream. Allocates `max` bytes on first use, never more.
#[derive(Debug)]
struct TailRing {
    max: usize,
    buf: Vec<u8>,
    /// Once `buf` is full: index of the oldest byte, which is also the next one overwritten.
    pos: usize,
}

impl TailRing {
    fn new(max: usize) -> Self {
        TailRing {
            max,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn push(&mut self, mut data: &[u8]) {
        if data.is_empty() || self.max == 0 {
            return;
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.max);
        }
        if data.len() >= self.max {
            // The chunk alone fills the ring: keep its last `max` bytes.
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - self.max..]);
            self.pos = 0;
            return;
        }
        if self.buf.len() < self.max {
            let n = (self.max - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        while !data.is_empty() {
            let n = (self.max - self.pos).min(data.len());
            self.buf[self.pos..self.pos + n].copy_from_slice(&data[..n]);
            self.pos = (self.pos + n) % self.max;
            data = &data[n..];
        }
    }

    /// The kept bytes in order, as two slices (older part first).
    fn as_slices(&self) -> (&[u8], &[u8]) {
        if self.buf.len() < self.max {
            (&self.buf, &[])
        } else {
            (&self.buf[self.pos..], &self.buf[..self.pos])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the log file must contain for `input` under `max_bytes`, computed the obvious way.
    fn model(input: &[u8], max_bytes: u64) -> Vec<u8> {
        let total = input.len() as u64;
        if total <= max_bytes {
            return input.to_vec();
        }
        let tail = ((max_bytes / 2) as usize).min(TAIL_MAX_BYTES);
        let head = max_bytes as usize - tail;
        let mut out = input[..head].to_vec();
        if out.last().is_some_and(|&b| b != b'\n') {
            out.push(b'\n');
        }
        let dropped = input.len() - head - tail;
        out.extend_from_slice(format!("[petit: {dropped} bytes dropped]\n").as_bytes());
        out.extend_from_slice(&input[input.len() - tail..]);
        out
    }

    fn run(input: &[u8], max_bytes: u64, chunk: usize) -> Vec<u8> {
        let mut log = CappedLog::new(Vec::new(), max_bytes);
        for part in input.chunks(chunk.max(1)) {
            assert!(log.write(part).is_ok());
        }
        assert_eq!(log.total_bytes(), input.len() as u64);
        match log.finish(None) {
            Ok(out) => out,
            Err(err) => panic!("finish into a Vec cannot fail: {err}"),
        }
    }

    #[test]
    fn output_under_cap_is_copied_exactly() {
        let input = b"hello\nworld\n".repeat(10);
        assert_eq!(run(&input, 1000, 7), input);
        assert_eq!(run(&input, input.len() as u64, 5), input);
    }

    #[test]
    fn output_over_cap_keeps_head_marker_and_tail() {
        let input: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let out = run(&input, 100, 33);
        let mut expected = input[..50].to_vec();
        expected.extend_from_slice(b"\n[petit: 900 bytes dropped]\n");
        expected.extend_from_slice(&input[950..]);
        assert_eq!(out, expected);
    }

    #[test]
    fn marker_needs_no_extra_newline_after_a_full_line() {
        let input = b"0123456789\n".repeat(20);
        let out = run(&input, 22, 1000);
        assert_eq!(
            out,
            b"0123456789\n[petit: 198 bytes dropped]\n0123456789\n".to_vec()
        );
    }

    #[test]
    fn zero_cap_keeps_only_the_marker() {
        assert_eq!(run(b"abc", 0, 1), b"[petit: 3 bytes dropped]\n".to_vec());
        assert_eq!(run(b"", 0, 1), Vec::<u8>::new());
    }

    #[test]
    fn trailer_is_appended_on_its_own_line() {
        let mut log = CappedLog::new(Vec::new(), 100);
        assert!(log.write(b"no newline").is_ok());
        let out = log.finish(Some("[petit: note]")).ok();
        assert_eq!(out, Some(b"no newline\n[petit: note]\n".to_vec()));
    }

    /// Counts bytes instead of storing them, to feed gigabytes through the log cheaply.
    struct CountingSink(u64);

    impl Write for CountingSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn multi_gigabyte_output_keeps_memory_bounded() {
        const CHUNK: usize = 64 * 1024;
        const CHUNKS: u64 = 5 * 1024 * 1024 * 1024 / CHUNK as u64; // 5 GiB, past u32 range.
        let max_bytes = 8 * 1024 * 1024;
        let mut log = CappedLog::new(CountingSink(0), max_bytes);
        let mut chunk = vec![0u8; CHUNK];
        for i in 0..CHUNKS {
            chunk[..8].copy_from_slice(&i.to_le_bytes());
            assert!(log.write(&chunk).is_ok());
            assert!(log.memory_bytes() <= TAIL_MAX_BYTES);
        }
        // The tail ends with the last chunk, whose first bytes carry its index.
        let (older, newer) = log.tail.as_slices();
        let tail: Vec<u8> = older.iter().chain(newer).copied().collect();
        assert_eq!(tail.len(), TAIL_MAX_BYTES);
        let last_start = TAIL_MAX_BYTES - CHUNK;
        assert_eq!(
            tail[last_start..last_start + 8],
            (CHUNKS - 1).to_le_bytes()[..]
        );
        assert_eq!(log.total_bytes(), CHUNKS * CHUNK as u64);
        let sink = log.finish(None).ok().map(|s| s.0);
        let written = sink.unwrap_or(0);
        assert!(written > max_bytes && written <= max_bytes + MARKER_MAX_BYTES);
    }

    struct FailingSink;

    impl Write for FailingSink {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failed_sink_poisons_the_log_but_keeps_counting() {
        let mut log = CappedLog::new(FailingSink, 100);
        assert!(log.write(b"first").is_err());
        assert!(log.write(b"second").is_ok());
        assert_eq!(log.total_bytes(), 11);
        assert!(log.finish(None).is_ok());
    }

    proptest! {
        #[test]
        fn any_chunking_matches_the_model(
            input in proptest::collection::vec(any::<u8>(), 0..3000),
            max_bytes in 0u64..2000,
            chunk in 1usize..500,
        ) {
            prop_assert_eq!(run(&input, max_bytes, chunk), model(&input, max_bytes));
        }
    }
}
