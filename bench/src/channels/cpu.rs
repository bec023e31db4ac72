//! CPU time of one thread of this process, from Linux's `/proc/self/task/<tid>/schedstat`
//! (nanoseconds on a CPU). Absent elsewhere: the report then leaves CPU out.

use std::time::Duration;

/// The calling thread's id.
pub fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time the thread has used so far.
pub fn thread_cpu(tid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_threads_cpu_time_grows() {
        let Some(tid) = current_tid() else {
            return; // not Linux
        };
        let before = thread_cpu(tid).expect("schedstat");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let after = thread_cpu(tid).expect("schedstat");
        assert!(after > before, "{before:?} {after:?}");
    }
}
