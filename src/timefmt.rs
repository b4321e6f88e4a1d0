//! UTC calendar formatting for checkpoint names and output.
//!
//! Converts days since 1970-01-01 to a proleptic Gregorian date with Howard
//! Hinnant's `civil_from_days` algorithm
//! (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).

/// (year, month 1..=12, day 1..=31, hour, minute, second) in UTC for `unix_ns`.
pub fn utc_parts(unix_ns: i64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (sod / 3600) as u32,
        (sod % 3600 / 60) as u32,
        (sod % 60) as u32,
    )
}

/// `YYYYMMDDHHMMSS` in UTC, as used in default checkpoint names.
pub fn stamp(unix_ns: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(unix_ns);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// RFC 3339 / ISO 8601 in UTC with second precision: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix_ns: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(unix_ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // 2026-11-29T23:52:07Z
        assert_eq!(rfc3339(1_795_996_327 * 1_000_000_000), "2026-11-29T23:52:07Z");
        assert_eq!(stamp(951_782_400 * 1_000_000_000), "20000229000000");
        assert_eq!(rfc3339(-1_000_000_000), "1969-12-31T23:59:59Z");
    }
}
