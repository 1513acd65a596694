//! A redb [`StorageBackend`] that loses power: writes since the last `sync_data` may vanish.
//!
//! [`Disk`] keeps two images, in the manner of SQLite's crash VFS and redb's own
//! `tests/crash_consistency.rs`: `live` (what reads see) and `durable` (what survived the last
//! `sync_data`), plus the list of operations since that sync. A power cut ([`Disk::crash_now`],
//! or the sync armed with [`Disk::arm_crash`]) builds a new image from `durable` and a seeded
//! random subset of the pending operations, chosen per 512-byte sector (torn writes) or per
//! write, and from then on every I/O fails, as it would for a process whose machine died.
//! The test then opens the image with a fresh [`Disk::from_image`].
//!
//! The images live behind `Arc<Mutex<..>>` so the test keeps a handle on the disk while redb
//! owns the backend. Nothing here reads a clock or global randomness: a seed fixes every cut.

use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

/// Sector size at which a torn write is torn.
pub const SECTOR: u64 = 512;

/// A tiny seeded generator (SplitMix64), so crash images are reproducible from a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A coin flip.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// How the unsynced operations are treated at a power cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// Every unsynced operation is lost.
    DropAll,
    /// Every unsynced operation reached the medium (the cut came just before the flush ended).
    KeepAll,
    /// Each unsynced write survives whole or not at all.
    WholeWrites,
    /// Each 512-byte sector of each unsynced write survives or not, independently.
    Sectors,
}

impl Tear {
    /// The mode a seed picks (the same seed always picks the same mode).
    pub fn from_seed(seed: u64) -> Tear {
        match Rng::new(seed ^ 0x7EA2).below(4) {
            0 => Tear::DropAll,
            1 => Tear::KeepAll,
            2 => Tear::WholeWrites,
            _ => Tear::Sectors,
        }
    }
}

#[derive(Clone, Debug)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct State {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// `sync_data` calls that completed.
    syncs: u64,
    /// `write` calls so far.
    writes: u64,
    /// Cut the power during the sync with this 1-based index.
    crash_at_sync: Option<(u64, u64)>,
    /// The image the power cut left, once it happened.
    crash_image: Option<Vec<u8>>,
}

/// A simulated disk shared by the test and the backend redb owns.
#[derive(Clone, Debug, Default)]
pub struct Disk(Arc<Mutex<State>>);

impl Disk {
    /// An empty disk.
    pub fn new() -> Self {
        Disk::default()
    }

    /// A disk whose durable content is `image` (what a machine finds after a power cut).
    pub fn from_image(image: Vec<u8>) -> Self {
        Disk(Arc::new(Mutex::new(State {
            live: image.clone(),
            durable: image,
            ..State::default()
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the disk from the next assertion.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A backend for redb on this disk.
    pub fn backend(&self) -> PowerLossBackend {
        PowerLossBackend(self.clone())
    }

    /// Number of completed `sync_data` calls.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Number of `write` calls so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Cuts the power during sync number `at_sync` (1-based), tearing with `seed`.
    pub fn arm_crash(&self, at_sync: u64, seed: u64) {
        self.lock().crash_at_sync = Some((at_sync, seed));
    }

    /// Whether the power was cut.
    pub fn crashed(&self) -> bool {
        self.lock().crash_image.is_some()
    }

    /// Cuts the power now (if it was not cut already) and returns the image left on the disk.
    pub fn crash_now(&self, seed: u64) -> Vec<u8> {
        let mut s = self.lock();
        if s.crash_image.is_none() {
            let image = tear(&s, seed);
            s.crash_image = Some(image);
        }
        s.crash_image.clone().unwrap_or_default()
    }

    /// The image the power cut left, if it happened.
    pub fn crash_image(&self) -> Option<Vec<u8>> {
        self.lock().crash_image.clone()
    }

    /// The durable image (what survives a cut that loses every unsynced write).
    pub fn durable(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }
}

/// The image after a power cut: `durable` plus a seeded subset of the pending operations,
/// applied in their original order (a later write of a sector wins only if it survived).
fn tear(s: &State, seed: u64) -> Vec<u8> {
    let mode = Tear::from_seed(seed);
    let mut rng = Rng::new(seed);
    let mut image = s.durable.clone();
    for op in &s.pending {
        match op {
            Pending::SetLen(len) => {
                let keep = match mode {
                    Tear::DropAll => false,
                    Tear::KeepAll => true,
                    Tear::WholeWrites | Tear::Sectors => rng.coin(),
                };
                if keep {
                    image.resize(to_usize(*len), 0);
                }
            }
            Pending::Write { offset, data } => match mode {
                Tear::DropAll => {}
                Tear::KeepAll => apply(&mut image, *offset, data),
                Tear::WholeWrites => {
                    if rng.coin() {
                        apply(&mut image, *offset, data);
                    }
                }
                Tear::Sectors => {
                    let end = offset.saturating_add(data.len() as u64);
                    let mut at = *offset;
                    while at < end {
                        let next = ((at / SECTOR) + 1) * SECTOR;
                        let stop = next.min(end);
                        if rng.coin() {
                            let from = to_usize(at - offset);
                            let to = to_usize(stop - offset);
                            apply(&mut image, at, &data[from..to]);
                        }
                        at = stop;
                    }
                }
            },
        }
    }
    image
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn apply(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_usize(offset);
    let end = start.saturating_add(data.len());
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
}

fn power_lost() -> std::io::Error {
    std::io::Error::other("simulated power loss")
}

/// The [`StorageBackend`] half of a [`Disk`]; hand it to `Store::with_backend`.
#[derive(Debug)]
pub struct PowerLossBackend(Disk);

impl StorageBackend for PowerLossBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        let s = self.0.lock();
        if s.crash_image.is_some() {
            return Err(power_lost());
        }
        Ok(s.live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let s = self.0.lock();
        if s.crash_image.is_some() {
            return Err(power_lost());
        }
        let start = to_usize(offset);
        let src = start
            .checked_add(out.len())
            .and_then(|end| s.live.get(start..end))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "read past end")
            })?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let mut s = self.0.lock();
        if s.crash_image.is_some() {
            return Err(power_lost());
        }
        s.live.resize(to_usize(len), 0);
        s.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut s = self.0.lock();
        if s.crash_image.is_some() {
            return Err(power_lost());
        }
        if let Some((at, seed)) = s.crash_at_sync {
            if s.syncs + 1 == at {
                let image = tear(&s, seed);
                s.crash_image = Some(image);
                return Err(power_lost());
            }
        }
        // Replaying the pending operations is cheaper than copying the whole live image.
        let pending = std::mem::take(&mut s.pending);
        for op in &pending {
            match op {
                Pending::SetLen(len) => s.durable.resize(to_usize(*len), 0),
                Pending::Write { offset, data } => apply(&mut s.durable, *offset, data),
            }
        }
        s.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut s = self.0.lock();
        if s.crash_image.is_some() {
            return Err(power_lost());
        }
        apply(&mut s.live, offset, data);
        s.writes += 1;
        s.pending.push(Pending::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }
}
