//! The standard `process_*` metrics (RSS, CPU, open file descriptors, start time) read from `/proc/self` at each
//! scrape, and `certpush_build_info`. Off Linux the process metrics are simply absent.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of `/proc/self/stat` (USER_HZ: 100 on every Linux ABI the image targets).
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc/self` says about this process at one scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// Start time, in Unix seconds.
    pub start_time_seconds: f64,
}

impl ProcessSample {
    /// Reads `/proc/self`; None where it does not exist.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        Self::parse(&stat, &status, &boot, open_fds)
    }

    /// The sample from the text of `/proc/self/stat`, `/proc/self/status` and `/proc/stat`.
    pub fn parse(stat: &str, status: &str, proc_stat: &str, open_fds: usize) -> Option<Self> {
        // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
        // After the name: state is field 3, so field n is fields[n - 3].
        let ticks = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        let cpu_seconds = (ticks(14)? + ticks(15)?) / TICKS_PER_SECOND;
        let started_ticks = ticks(22)?;
        let resident_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let boot: f64 = proc_stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(Self {
            cpu_seconds,
            resident_bytes: resident_kib * 1024.0,
            open_fds: open_fds as f64,
            start_time_seconds: boot + started_ticks / TICKS_PER_SECOND,
        })
    }
}

/// The `process_*` collector, registered unprefixed (the names every Prometheus client library uses).
#[derive(Debug, Default)]
pub struct ProcessMetrics;

impl Collector for ProcessMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(sample) = ProcessSample::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(sample.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                sample.resident_bytes,
            ),
            ("process_open_fds", "Number of open file descriptors", sample.open_fds),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                sample.start_time_seconds,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_read_from_proc_texts_even_with_a_tricky_command_name() {
        let stat = "4242 (cert push) op) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 150 0 0 20 0 9 0 12345 \
                    100000000 5000 18446744073709551615";
        let status = "Name:\tcertpush\nVmRSS:\t   51200 kB\nThreads:\t9\n";
        let proc_stat = "cpu  1 2 3\nbtime 1767225600\nprocesses 99\n";
        let s = ProcessSample::parse(stat, status, proc_stat, 17).unwrap();
        assert_eq!(s.cpu_seconds, 4.0);
        assert_eq!(s.resident_bytes, 51200.0 * 1024.0);
        assert_eq!(s.open_fds, 17.0);
        assert_eq!(s.start_time_seconds, 1767225600.0 + 123.45);
        assert!(ProcessSample::parse("garbage", status, proc_stat, 1).is_none());
    }

    #[test]
    fn this_process_is_sampled_on_linux() {
        if cfg!(target_os = "linux") {
            let s = ProcessSample::read().expect("/proc/self is readable");
            assert!(
                s.resident_bytes > 0.0 && s.open_fds > 0.0 && s.start_time_seconds > 1.6e9,
                "{s:?}"
            );
        }
    }
}
