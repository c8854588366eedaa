//! Times as status writes them: Kubernetes' date-time form at second precision. Shared by the decisions
//! (`policy`) and the status transitions (`status`), so neither reaches into the other for it.

use jiff::Timestamp;

/// Kubernetes' date-time form, second precision.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a date-time written by `format_time` (or any RFC 3339 time).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}
