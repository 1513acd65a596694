//! Gives back the executable's code pages when the daemon goes idle.
//!
//! Most of an idle `pt run`'s resident memory is its own executable: start-up (argument
//! parsing, YAML, recovery, the first schedule evaluation) runs code spread over nearly all of
//! `.text`, and the kernel maps file pages in 64 KiB windows around each fault, so about 4 MiB
//! of code stays mapped while the daemon sleeps for hours (docs/performance.md, "Idle RSS").
//! Those pages are clean copies of the file: dropping them from this process's page tables
//! (`madvise(MADV_DONTNEED)` on a private, never-written mapping) loses nothing, they stay in
//! the page cache, and the next wake-up maps back what it runs with minor faults. It is what
//! the kernel does to a sleeping process under memory pressure anyway, done before the
//! pressure. Only the read-only `PT_LOAD` segments of the main program are touched, rounded
//! inwards to whole pages, so no page that holds writable data (relocated or not) is ever
//! dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Idle time ahead of the daemon from which it gives its code pages back: a job firing every
/// few seconds keeps its pages (re-mapping them each time would be work for nothing); the
/// systemd watchdog's ping (every 30 s with the shipped unit) does not prevent the release.
pub const IDLE_BEFORE_RELEASE: Duration = Duration::from_secs(10);

/// Set by the daemon's loop before a long sleep, performed by [`on_park`].
static RELEASE_ON_PARK: AtomicBool = AtomicBool::new(false);

/// Says whether the daemon is going idle (true: release the code pages the next time the
/// runtime parks; false: it is not, forget an earlier request). The release waits for the park
/// because the loop's turn is not the last code that runs before the sleep: the control
/// socket's answer is written, and every branch of the loop's `select!` polled, after it.
pub fn release_when_parked(idle: bool) {
    RELEASE_ON_PARK.store(idle, Ordering::Relaxed);
}

/// The tokio runtime's `on_thread_park` hook (set by `pt`'s runtime): called when every task
/// waits, it performs a release that [`release_when_parked`] asked for. Without the hook (a
/// program that embeds the daemon on its own runtime) nothing is released.
pub fn on_park() {
    if RELEASE_ON_PARK.swap(false, Ordering::Relaxed) {
        release_code_pages();
    }
}

/// Drops the resident pages of the main program's read-only segments (code, read-only data)
/// from this process's page tables. Returns the bytes of address space advised (0 where
/// unsupported or on error); never fails: a refused `madvise` only leaves the pages mapped.
pub fn release_code_pages() -> usize {
    #[cfg(target_os = "linux")]
    {
        linux::release()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::c_void;

    /// Page-aligned `[start, end)` ranges of the main program's read-only segments.
    struct Ranges {
        page: usize,
        list: Vec<(usize, usize)>,
    }

    extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the call, and `data`
        // is the `&mut Ranges` given to it below (nothing else holds it meanwhile).
        let (info, ranges) = unsafe { (&*info, &mut *(data as *mut Ranges)) };
        if info.dlpi_phdr.is_null() {
            return 1;
        }
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers of a loaded object.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        for ph in phdrs {
            if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_W != 0 {
                continue;
            }
            let start = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
            let end = start.wrapping_add(ph.p_memsz as usize);
            // Inwards: a page shared with a neighbouring (possibly writable) segment stays.
            let start = start.div_ceil(ranges.page) * ranges.page;
            let end = end / ranges.page * ranges.page;
            if end > start {
                ranges.list.push((start, end));
            }
        }
        1 // the first object is the main program: stop there
    }

    pub(super) fn release() -> usize {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let Ok(page) = usize::try_from(page) else {
            return 0;
        };
        if page == 0 || !page.is_power_of_two() {
            return 0;
        }
        let mut ranges = Ranges {
            page,
            list: Vec::new(),
        };
        // SAFETY: `collect` only reads the headers it is given and writes to `ranges`, which
        // outlives the call.
        unsafe {
            libc::dl_iterate_phdr(Some(collect), &mut ranges as *mut Ranges as *mut c_void);
        }
        let mut advised = 0;
        for (start, end) in ranges.list {
            // SAFETY: the range lies inside a read-only, file-backed segment of this program:
            // MADV_DONTNEED only unmaps its pages, which fault back in unchanged from the file.
            let rc =
                unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_DONTNEED) };
            if rc == 0 {
                advised += end - start;
            }
        }
        advised
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn code_pages_are_released_and_the_program_keeps_running() {
        let advised = release_code_pages();
        // At least this test's own code segment.
        assert!(advised > 0, "nothing advised");
        // Code that was just dropped runs again (faults back in) and gives the same answer.
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(v.iter().sum::<u64>(), 500_500);
        assert_eq!(format!("{:?}", Some(3)), "Some(3)");
        assert!(release_code_pages() > 0);
    }

    #[test]
    fn a_release_waits_for_the_park_and_can_be_withdrawn() {
        release_when_parked(true);
        release_when_parked(false);
        assert!(!RELEASE_ON_PARK.load(Ordering::Relaxed));
        release_when_parked(true);
        on_park();
        assert!(
            !RELEASE_ON_PARK.load(Ordering::Relaxed),
            "the request is consumed"
        );
        on_park(); // nothing asked: nothing done
    }
}
