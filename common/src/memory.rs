//! The process's memory settings.

/// Turn transparent huge pages off for this process (Linux; elsewhere nothing to do).
///
/// The allocator (mimalloc) asks the kernel for huge pages on its large regions, and the
/// kernel then zeroes 2 MiB at the first touch of each one, again every time the allocator
/// has returned it and touches it anew. The projector allocates and frees a batch's worth
/// of messages, events and requests over and over, and that zeroing was about a sixth of its
/// CPU in `scripts/bench projector`; with 4 KiB pages only what is touched is zeroed. Call
/// it first thing in `main`: it applies to every page faulted in afterwards.
///
/// An error means the kernel has no such setting (no huge pages to turn off).
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::disable_transparent_huge_pages(true)?;
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_ends_with_huge_pages_off() {
        // Each test runs in a process of its own under nextest; under cargo test the
        // setting applies to the whole test binary, which is harmless.
        super::disable_transparent_huge_pages().expect("prctl(PR_SET_THP_DISABLE)");
        assert!(
            rustix::thread::transparent_huge_pages_are_disabled()
                .expect("prctl(PR_GET_THP_DISABLE)")
        );
    }
}
