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
    // A local date and time as people write it: `2026-12-06 20:40`, with or without seconds.
    // (With a `T` and seconds but no zone it is read above, as the providers mean it: UTC.)
    for format in ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Local
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .context("that local time does not exist (a clock change skipped it)");
        }
    }
    let ago = duration(s).with_context(|| {
        format!(
            "{s:?} is not a time (try 2026-11-23, \"2026-11-23 20:40\", today, 2h, 1h30m or an \
             RFC 3339 time)"
        )
    })?;
    chrono::Duration::try_seconds(ago)
        .and_then(|d| now.checked_sub_signed(d))
        .context("time out of range")
}

/// Seconds in a duration such as `2h`, `2H`, `90s` or `1h30m` (units s, m/min, h, d, w).
fn duration(s: &str) -> Result<i64> {
    let text = s.to_ascii_lowercase().replace(' ', "");
    let mut rest = text.as_str();
    let mut total: i64 = 0;
    if rest.is_empty() {
        bail!("empty");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            bail!("expected a number in {s:?}");
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_seconds = match unit {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "" => bail!("a number without a unit in {s:?} (use m, h, d or w)"),
            other => bail!("unknown time unit {other:?} in {s:?} (use m, h, d or w)"),
        };
        let n: i64 = number.parse().context("number too large")?;
        total = n
            .checked_mul(unit_seconds)
            .and_then(|part| total.checked_add(part))
            .context("time out of range")?;
        rest = next;
    }
    Ok(total)
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
        assert_eq!(
            parse_time("2H", now).expect("2H"),
            now - chrono::Duration::hours(2)
        );
        assert_eq!(
            parse_time("1h30m", now).expect("1h30m"),
            now - chrono::Duration::minutes(90)
        );
        let local = Local
            .with_ymd_and_hms(2026, 12, 6, 20, 40, 0)
            .earliest()
            .expect("local")
            .with_timezone(&Utc);
        assert_eq!(parse_time("2026-12-06 20:40", now).expect("local"), local);
        assert!(parse_time("1h30", now).is_err(), "a number without a unit");
    }
}
