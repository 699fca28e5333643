//! CPU time of processes, from `/proc`: what a run cost this process, its
//! children and the broker beside it, whatever the machine's other load.

/// CPU time in milliseconds from a `/proc/.../stat` line: the sum of the
/// fields numbered `fields` (as proc(5) numbers them, from 1), in clock
/// ticks of 10 ms (Linux's USER_HZ on every architecture it runs on).
fn stat_cpu_ms(stat: &str, fields: [usize; 2]) -> Option<f64> {
    // The fields after the command name, which may hold spaces: field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let values: Vec<&str> = rest.split_whitespace().collect();
    let mut ms = 0.0;
    for field in fields {
        ms += values.get(field - 3)?.parse::<f64>().ok()? * 10.0;
    }
    Some(ms)
}

/// CPU time (user and system) of this process so far, ms.
pub fn own_ms() -> Option<f64> {
    stat_cpu_ms(&std::fs::read_to_string("/proc/self/stat").ok()?, [14, 15])
}

/// CPU time (user and system) of this process's children that ended and
/// were waited for, ms.
pub fn children_ms() -> Option<f64> {
    stat_cpu_ms(&std::fs::read_to_string("/proc/self/stat").ok()?, [16, 17])
}

/// CPU time (user and system) of the process `pid` so far, ms.
pub fn process_ms(pid: u32) -> Option<f64> {
    stat_cpu_ms(
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
        [14, 15],
    )
}

/// The pid in a pid file (the broker's, as `scripts/tansu.sh` writes it).
pub fn pid_from_file(path: &str) -> std::io::Result<Option<u32>> {
    Ok(std::fs::read_to_string(path)?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_numbered_fields_after_a_command_name_with_spaces() {
        // pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17)
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15";
        assert_eq!(stat_cpu_ms(stat, [14, 15]), Some((11.0 + 12.0) * 10.0));
        assert_eq!(stat_cpu_ms(stat, [16, 17]), Some((13.0 + 14.0) * 10.0));
        assert_eq!(stat_cpu_ms("42 (x) S 1", [14, 15]), None);
    }

    #[test]
    fn this_process_has_spent_some_cpu() {
        let spin: u64 = (0..20_000_000u64).fold(0, |a, x| a ^ x.wrapping_mul(31));
        std::hint::black_box(spin);
        assert!(own_ms().is_some_and(|ms| ms >= 0.0));
    }
}
