//! What /proc says about a process: its CPU time and its memory lines.

/// `USER_HZ`: what /proc's CPU times count in (100 on every Linux this runs on).
pub const CLOCK_TICKS: f64 = 100.0;

/// User + system CPU time of process `pid` (a number, or `self`; all its threads), in clock
/// ticks, from `/proc/<pid>/stat` (fields 14 and 15, counted after the command name's `)`,
/// which may itself hold spaces).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU seconds of process `pid` (a number, or `self`) so far.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    cpu_ticks(pid).map(|ticks| ticks as f64 / CLOCK_TICKS)
}

/// A `kB` line of `/proc/<pid>/status`, e.g. `VmRSS` or `VmHWM`, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_ticks("self").is_some());
        assert_eq!(
            cpu_ticks("self").is_some(),
            cpu_ticks(&pid.to_string()).is_some()
        );
        let rss = status_kib(pid, "VmRSS").expect("VmRSS");
        let peak = status_kib(pid, "VmHWM").expect("VmHWM");
        assert!(rss > 0 && peak >= rss, "rss {rss} KiB, peak {peak} KiB");
        assert_eq!(status_kib(pid, "VmNoSuchLine"), None);
    }
}
