//! Wall-clock time, in one place so hosts without `SystemTime` can substitute their own.

#[cfg(not(target_arch = "wasm32"))]
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

/// Milliseconds since the Unix epoch.
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, from JavaScript's clock: `SystemTime` panics on wasm32.
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> u64 {
    js_sys::Date::now().max(0.0) as u64
}

/// An RFC 3339 timestamp with milliseconds, as JavaScript's `Date.toISOString` writes it.
/// The last millisecond of the year 9999, the latest time RFC 3339 can write.
pub const LATEST_ISO8601_MS: u64 = 253_402_300_799_999;

/// Times past the year 9999 are written as its last millisecond: RFC 3339 has no later year, and
/// a time that large (from a client, say) must not bring the formatter down.
pub fn iso8601(ms: u64) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(ms.min(LATEST_ISO8601_MS));
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso8601_matches_javascript() {
        assert_eq!(
            super::iso8601(1_795_467_127_183),
            "2026-11-23T20:52:07.183Z"
        );
    }

    #[test]
    fn times_past_the_year_9999_are_clamped() {
        assert_eq!(super::iso8601(u64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            super::iso8601(super::LATEST_ISO8601_MS),
            "9999-12-31T23:59:59.999Z"
        );
    }
}
