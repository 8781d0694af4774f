//! Calendar dates for date attributes and event timestamps (UTC): plain arithmetic on days since
//! the epoch, so the library needs no date crate (chrono is the connector's).

use std::time::{SystemTime, UNIX_EPOCH};

use super::config::DateFormat;

/// Days since 1970-01-01 (UTC) of a point in time.
pub(crate) fn day_of(t: SystemTime) -> i64 {
    secs_of(t).div_euclid(86_400)
}

fn secs_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// (year, month, day) of a day number (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A day as a Brevo date attribute value.
pub(crate) fn format_day(days: i64, format: DateFormat) -> String {
    let (y, m, d) = civil(days);
    match format {
        DateFormat::Date => format!("{y:04}-{m:02}-{d:02}"),
        DateFormat::DateTime => format!("{y:04}-{m:02}-{d:02}T00:00:00Z"),
    }
}

/// ISO-8601 UTC timestamp with seconds, e.g. `2024-01-24T17:39:57Z` (for `event_date`).
pub(crate) fn format_timestamp(t: SystemTime) -> String {
    let secs = secs_of(t);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        for (days, text) in [
            (0, "1970-01-01"),
            (59, "1970-03-01"),
            (11_016, "2000-02-29"),
            (19_782, "2024-02-29"),
            (20_000, "2024-10-04"),
            (-1, "1969-12-31"),
        ] {
            assert_eq!(format_day(days, DateFormat::Date), text);
        }
        assert_eq!(format_day(0, DateFormat::DateTime), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_706_114_397);
        assert_eq!(format_timestamp(t), "2024-01-24T16:39:57Z");
        assert_eq!(day_of(t), 19_746);
    }
}
