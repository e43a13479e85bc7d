//! Writing command output: stdout that tolerates closed pipes, JSON helpers, and human-readable formatting of
//! times, sizes and writers.

use serde_json::{json, Value};
use std::io::Write;
use zarrtx::WriterInfo;

/// Prints `text` (plus a newline) to stdout. A closed pipe (`zarrtx log | head`) ends the process quietly
/// instead of panicking.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let result = out.write_all(text.as_bytes()).and_then(|_| {
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    });
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(crate::cli_error::EXIT_FAILURE);
    }
}

/// Prints `value` as pretty JSON.
pub fn emit_json(value: &Value) {
    emit(&serde_json::to_string_pretty(value).expect("JSON values serialize"));
}

/// A writer as JSON: `{"host", "pid", "label"}` (label is null when unset).
pub fn writer_json(w: &WriterInfo) -> Value {
    json!({"host": w.host, "pid": w.pid, "label": w.label})
}

/// A writer as text: `label (pid N on host)` or `pid N on host`.
pub fn writer_text(w: &WriterInfo) -> String {
    match &w.label {
        Some(l) => format!("{l} (pid {} on {})", w.pid, w.host),
        None => format!("pid {} on {}", w.pid, w.host),
    }
}

/// Formats milliseconds since the Unix epoch as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// Formats a byte count with binary units (`12.3 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Formats a shape as `[3, 512, 512]`.
pub fn shape_text(shape: &[u64]) -> String {
    format!(
        "[{}]",
        shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso_time(1_767_225_599_000), "2025-12-31T23:59:59.000Z");
    }

    #[test]
    fn formats_sizes_and_writers() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        let w = WriterInfo {
            host: "h".into(),
            pid: 7,
            label: Some("worker-1".into()),
        };
        assert_eq!(writer_text(&w), "worker-1 (pid 7 on h)");
        assert_eq!(writer_json(&w), json!({"host": "h", "pid": 7, "label": "worker-1"}));
        assert_eq!(shape_text(&[3, 4]), "[3, 4]");
    }
}
