//! Times as people type them on the command line.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Local, NaiveDate, TimeZone, Utc};

/// Reads a time as people type it: RFC 3339, a local date, today/yesterday, or "2h" ago.
pub(crate) fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let s = s.trim();
    if let Some(t) = callpop_core::wire::parse_timestamp(s) {
        return Ok(t);
    }
    let local_midnight = |d: NaiveDate| -> Result<DateTime<Utc>> {
        let naive = d.and_hms_opt(0, 0, 0).context("invalid date")?;
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .context("that local time does not exist")
    };
    let today = now.with_timezone(&Local).date_naive();
    match s.to_ascii_lowercase().as_str() {
        "today" => return local_midnight(today),
        "yesterday" => return local_midnight(today.pred_opt().context("date out of range")?),
        _ => {}
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local_midnight(d);
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .with_context(|| {
            format!("{s:?} is not a time (try 2026-11-23, today, 2h or an RFC 3339 time)")
        })?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().context("number too large")?;
    let unit_seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => bail!("unknown time unit {other:?} in {s:?} (use m, h, d or w)"),
    };
    n.checked_mul(unit_seconds)
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| now.checked_sub_signed(d))
        .context("time out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_form_people_type() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .single()
            .expect("time");
        assert_eq!(
            parse_time("2h", now).expect("2h"),
            now - chrono::Duration::hours(2)
        );
        assert_eq!(
            parse_time("7d", now).expect("7d"),
            now - chrono::Duration::days(7)
        );
        assert_eq!(
            parse_time("2026-11-20T10:00:00Z", now).expect("rfc3339"),
            Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0)
                .single()
                .expect("time")
        );
        assert!(parse_time("2026-11-20", now).is_ok());
        assert!(parse_time("today", now).is_ok());
        assert!(parse_time("soon", now).is_err());
        assert!(parse_time("5y", now).is_err());
        assert!(parse_time("99999999999999999999h", now).is_err());
    }
}
