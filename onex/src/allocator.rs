//! The allocator generated nodes install, and the process-wide settings it
//! runs best with.
//!
//! A generated node's `main.rs` installs [`Allocator`] as the global
//! allocator and calls [`init`] first thing in `main`.

/// The global allocator a generated node's `main.rs` installs
/// (`#[global_allocator]`): mimalloc with the `mimalloc` feature (on by
/// default), the system allocator without it. A node builds and frees an
/// envelope, its JSON and its headers for every message, often on
/// different threads (a subscriber frees what a publisher built), where
/// glibc's allocator contends: the in-memory bus's typed publish runs
/// about three times as fast on mimalloc. The feature also makes mimalloc
/// the C allocator of the program (mimalloc's `override`), so librdkafka's
/// allocations per record, freed on its own threads, leave glibc's
/// allocator too: the typed Kafka publish takes about a sixth less CPU.
#[cfg(feature = "mimalloc")]
pub use mimalloc::MiMalloc as Allocator;
/// The global allocator a generated node's `main.rs` installs: the system
/// allocator, as the `mimalloc` feature is off.
#[cfg(not(feature = "mimalloc"))]
pub use std::alloc::System as Allocator;

/// Sets up the process for [`Allocator`]; call it first thing in `main`
/// (a generated node's `main.rs` does). With the `mimalloc` feature on
/// Linux, it turns transparent huge pages off for the process, unless
/// `MIMALLOC_ALLOW_THP` is set (then mimalloc's own option decides, as it
/// read it when the process started).
///
/// Why: mimalloc asks the kernel for huge pages on its memory, and the
/// kernel then clears two megabytes at the first touch of each. librdkafka
/// allocates and frees a large buffer for every fetch it decompresses and
/// every produce request it builds, and mimalloc hands such memory back to
/// the kernel between them: a Kafka consumer spent a fifth of its CPU in
/// the kernel clearing pages. Without huge pages the same work took about
/// a sixth less CPU and a quarter less memory.
pub fn init() {
    if disables_huge_pages(std::env::var_os("MIMALLOC_ALLOW_THP").as_deref()) {
        disable_huge_pages();
    }
}

/// Whether [`init`] turns huge pages off, given `MIMALLOC_ALLOW_THP`.
fn disables_huge_pages(allow_thp: Option<&std::ffi::OsStr>) -> bool {
    cfg!(all(feature = "mimalloc", target_os = "linux")) && allow_thp.is_none()
}

/// Turns transparent huge pages off for this process: the kernel checks
/// the flag at every fault, for memory mapped before the call too.
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
fn disable_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument and the
    // unused ones as zero; it changes no memory of the process.
    let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if result != 0 {
        // Kernels before 3.15 lack it: the process runs as before.
        tracing::debug!(
            "cannot turn transparent huge pages off: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(all(feature = "mimalloc", target_os = "linux")))]
fn disable_huge_pages() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimallocs_own_option_decides_when_set() {
        let on = cfg!(all(feature = "mimalloc", target_os = "linux"));
        assert_eq!(disables_huge_pages(None), on);
        assert!(!disables_huge_pages(Some("1".as_ref())));
        assert!(!disables_huge_pages(Some("0".as_ref())));
    }

    #[cfg(all(feature = "mimalloc", target_os = "linux"))]
    #[test]
    fn huge_pages_are_off_after_disabling_them() {
        disable_huge_pages();
        // SAFETY: PR_GET_THP_DISABLE takes no argument but zeros.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }
}
