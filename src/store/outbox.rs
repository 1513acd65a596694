//! The outbox and the alert marks (docs/alerts.md): deliveries written in the transaction of
//! the transition that decided them, removed in the commit that records their delivery; and
//! the once-only marks of deadline alerts (`late`, `long_running`, `stale`) and of a streak
//! of missed firings.

use std::collections::BTreeMap;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::records;
use super::{meta_i64, meta_u64, Store, StoreError, WriteTx, META};
use crate::core::alert::OutboxEntry;
use crate::time::Timestamp;

/// `delivery number -> OutboxRecord`: every delivery not yet made, oldest first.
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// `mark -> time` (`late/<run>`, `long/<run>`, `stale/<job>`, `missed/<job>`; see
/// [`crate::core::alert::Mark`]).
const ALERT_MARKS: TableDefinition<&str, i64> = TableDefinition::new("alert_marks");

/// The next delivery number (u64 LE).
const KEY_NEXT_DELIVERY: &str = "next_delivery";
/// Deliveries dropped because the outbox was full, ever (u64 LE).
const KEY_DROPPED: &str = "alerts_dropped";
/// Deliveries given up after the maximum age, ever (u64 LE).
const KEY_EXPIRED: &str = "alerts_expired";
/// When the running `pt run` started (i64 LE, ms); removed by its graceful stop, so a start
/// that finds it knows the last stop was unclean (the `back` alert).
const KEY_DAEMON_UP: &str = "daemon_up";

/// What the outbox holds, for `pt status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxSummary {
    /// Deliveries waiting.
    pub pending: u64,
    /// Of those, how many failed at least once.
    pub failing: u64,
    /// The oldest waiting delivery's creation time.
    pub oldest: Option<Timestamp>,
    /// The last failure's answer (of the most recently failed delivery).
    pub last_error: Option<String>,
    /// Dropped because the outbox was full, ever.
    pub dropped: u64,
    /// Given up after the maximum age, ever.
    pub expired: u64,
}

impl Store {
    /// Every delivery in the outbox, oldest first. The outbox is bounded
    /// ([`crate::core::alert::MAX_OUTBOX`]), so this is too.
    pub fn outbox(&self) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        let rx = self.begin_read()?;
        let t = match rx.open_table(OUTBOX) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let entry = records::decode_outbox(v.value()).map_err(|e| self.rec(e))?;
            out.push((k.value(), entry));
        }
        Ok(out)
    }

    /// One delivery of the outbox.
    pub fn outbox_entry(&self, key: u64) -> Result<Option<OutboxEntry>, StoreError> {
        let rx = self.begin_read()?;
        let t = match rx.open_table(OUTBOX) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let Some(v) = t.get(key).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        records::decode_outbox(v.value())
            .map(Some)
            .map_err(|e| self.rec(e))
    }

    /// The outbox at a glance, for `pt status`.
    pub fn outbox_summary(&self) -> Result<OutboxSummary, StoreError> {
        let mut s = OutboxSummary::default();
        let mut last_failed: Option<Timestamp> = None;
        for (_, e) in self.outbox()? {
            s.pending += 1;
            s.oldest = Some(s.oldest.map_or(e.created_at, |o| o.min(e.created_at)));
            if e.attempts > 0 && e.last_error.is_some() {
                s.failing += 1;
                if last_failed.is_none_or(|t| e.next_at >= t) {
                    last_failed = Some(e.next_at);
                    s.last_error = e.last_error.clone();
                }
            }
        }
        s.dropped = self.meta_counter(KEY_DROPPED)?;
        s.expired = self.meta_counter(KEY_EXPIRED)?;
        Ok(s)
    }

    /// Every alert mark.
    pub fn alert_marks(&self) -> Result<BTreeMap<String, Timestamp>, StoreError> {
        let rx = self.begin_read()?;
        let t = match rx.open_table(ALERT_MARKS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = BTreeMap::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.insert(k.value().to_string(), Timestamp(v.value()));
        }
        Ok(out)
    }

    /// When the `pt run` that has not stopped gracefully started, if one has not.
    pub fn daemon_up(&self) -> Result<Option<Timestamp>, StoreError> {
        let rx = self.begin_read()?;
        let t = rx.open_table(META).map_err(|e| self.err(e))?;
        let Some(v) = t.get(KEY_DAEMON_UP).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        meta_i64(KEY_DAEMON_UP, v.value())
            .map(|t| Some(Timestamp(t)))
            .map_err(|detail| StoreError::Corrupt {
                path: self.path.clone(),
                detail,
            })
    }

    fn meta_counter(&self, key: &str) -> Result<u64, StoreError> {
        let rx = self.begin_read()?;
        let t = rx.open_table(META).map_err(|e| self.err(e))?;
        let Some(v) = t.get(key).map_err(|e| self.err(e))? else {
            return Ok(0);
        };
        meta_u64(key, v.value()).map_err(|detail| StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        })
    }
}

impl WriteTx {
    /// Adds a delivery to the outbox and returns its number. If the outbox then holds more
    /// than `max` deliveries, the oldest are removed (and counted); their numbers are returned
    /// too, for the caller's warning.
    pub fn push_delivery(
        &mut self,
        entry: &OutboxEntry,
        max: usize,
    ) -> Result<(u64, Vec<u64>), redb::Error> {
        let key = {
            let mut meta = self.tx.open_table(META)?;
            let key = match meta.get(KEY_NEXT_DELIVERY)? {
                Some(v) => {
                    meta_u64(KEY_NEXT_DELIVERY, v.value()).map_err(redb::Error::Corrupted)?
                }
                None => 1,
            };
            meta.insert(KEY_NEXT_DELIVERY, (key + 1).to_le_bytes().as_slice())?;
            key
        };
        let mut dropped = Vec::new();
        {
            let mut t = self.tx.open_table(OUTBOX)?;
            t.insert(key, records::encode_outbox(entry).as_slice())?;
            while usize::try_from(t.len()?).unwrap_or(usize::MAX) > max.max(1) {
                let Some((k, _)) = t.pop_first()? else {
                    break;
                };
                dropped.push(k.value());
            }
        }
        if !dropped.is_empty() {
            self.add_counter(KEY_DROPPED, dropped.len() as u64)?;
        }
        Ok((key, dropped))
    }

    /// The delivery number the next [`WriteTx::push_delivery`] will return.
    pub fn next_delivery(&mut self) -> Result<u64, redb::Error> {
        let meta = self.tx.open_table(META)?;
        let v = meta.get(KEY_NEXT_DELIVERY)?;
        match v {
            Some(v) => meta_u64(KEY_NEXT_DELIVERY, v.value()).map_err(redb::Error::Corrupted),
            None => Ok(1),
        }
    }

    /// One delivery of the outbox, as this transaction sees it.
    pub fn delivery(&mut self, key: u64) -> Result<Option<OutboxEntry>, redb::Error> {
        let t = self.tx.open_table(OUTBOX)?;
        let Some(v) = t.get(key)? else {
            return Ok(None);
        };
        records::decode_outbox(v.value())
            .map(Some)
            .map_err(|e| redb::Error::Corrupted(e.0))
    }

    /// Records a failed try of a delivery (its new attempt count, next time, answer).
    pub fn update_delivery(&mut self, key: u64, entry: &OutboxEntry) -> Result<(), redb::Error> {
        let mut t = self.tx.open_table(OUTBOX)?;
        if t.get(key)?.is_some() {
            t.insert(key, records::encode_outbox(entry).as_slice())?;
        }
        Ok(())
    }

    /// Removes a delivery: it was made, or `expired` (given up after the maximum age).
    pub fn remove_delivery(&mut self, key: u64, expired: bool) -> Result<(), redb::Error> {
        let removed = self.tx.open_table(OUTBOX)?.remove(key)?.is_some();
        if removed && expired {
            self.add_counter(KEY_EXPIRED, 1)?;
        }
        Ok(())
    }

    /// Sets an alert mark.
    pub fn set_mark(&mut self, key: &str, at: Timestamp) -> Result<(), redb::Error> {
        self.tx.open_table(ALERT_MARKS)?.insert(key, at.0)?;
        Ok(())
    }

    /// Removes an alert mark (nothing if it is not there).
    pub fn remove_mark(&mut self, key: &str) -> Result<(), redb::Error> {
        self.tx.open_table(ALERT_MARKS)?.remove(key)?;
        Ok(())
    }

    /// Notes that a `pt run` started at `at` (`Some`), or stopped gracefully (`None`).
    pub fn set_daemon_up(&mut self, at: Option<Timestamp>) -> Result<(), redb::Error> {
        let mut meta = self.tx.open_table(META)?;
        match at {
            Some(t) => {
                meta.insert(KEY_DAEMON_UP, t.0.to_le_bytes().as_slice())?;
            }
            None => {
                meta.remove(KEY_DAEMON_UP)?;
            }
        }
        Ok(())
    }

    fn add_counter(&mut self, key: &str, n: u64) -> Result<(), redb::Error> {
        let mut meta = self.tx.open_table(META)?;
        let current = match meta.get(key)? {
            Some(v) => meta_u64(key, v.value()).map_err(redb::Error::Corrupted)?,
            None => 0,
        };
        meta.insert(key, current.saturating_add(n).to_le_bytes().as_slice())?;
        Ok(())
    }
}
