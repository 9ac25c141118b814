//! Positions in a partition as the command line names them, for `consume --from` and
//! `group reset-offsets --to`: one parser, so both flags take the same words.
//!
//! - `earliest`, `latest`: the log start offset, the high watermark;
//! - `OFFSET`: that offset;
//! - `-N`: N records before the end (the high watermark), per partition, as kcat's `-o -N`;
//! - `+N`: N records after the log start, per partition;
//! - `@UNIX_MS` or an ISO-8601 time (`2026-12-01T10:00:00Z`, `2026-12-01T11:00:00.5+01:00`,
//!   or a date, `2026-12-01`, meaning its midnight UTC): the first record at or after it.
//!
//! Relative positions never leave the partition: `-N` stops at the log start, `+N` at the end.

use cairn_client::Seek;

use crate::usage_error::usage;

/// What a position flag's value names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// Where every partition resolves the same way (or by timestamp).
    Absolute(Seek),
    /// This many records before each partition's end.
    FromEnd(i64),
    /// This many records after each partition's log start.
    FromStart(i64),
}

/// The words a position flag takes, for help texts and errors.
pub const POSITION_SYNTAX: &str = "earliest|latest|OFFSET|-N|+N|@UNIX_MS|ISO-8601";

impl Position {
    /// Parses `text`, the value of `flag`.
    ///
    /// # Errors
    /// A usage error naming the flag, the value and what it should look like.
    pub fn parse(flag: &str, text: &str) -> anyhow::Result<Position> {
        let bad = |why: String| usage(format!("{flag} {text:?}: {why}"));
        let count = |digits: &str| -> anyhow::Result<i64> {
            digits
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0 && digits.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    bad(format!(
                        "expected a number of records after the sign; {}",
                        Self::expected()
                    ))
                })
        };
        Ok(match text {
            "earliest" => Position::Absolute(Seek::Earliest),
            "latest" => Position::Absolute(Seek::Latest),
            _ if text.starts_with('-') => Position::FromEnd(count(&text[1..])?),
            _ if text.starts_with('+') => Position::FromStart(count(&text[1..])?),
            _ if text.starts_with('@') => {
                let ms: i64 = text[1..].parse().map_err(|_| {
                    bad("@ needs milliseconds since the epoch, e.g. @1767225600000".to_string())
                })?;
                if ms < 0 {
                    return Err(bad("a time must not be before 1970".to_string()));
                }
                Position::Absolute(Seek::Timestamp(ms))
            }
            _ if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() => {
                Position::Absolute(Seek::Offset(
                    text.parse()
                        .map_err(|_| bad("the offset is too large".to_string()))?,
                ))
            }
            _ if text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-') => {
                Position::Absolute(Seek::Timestamp(parse_iso8601(text).map_err(bad)?))
            }
            _ => return Err(bad(Self::expected())),
        })
    }

    fn expected() -> String {
        format!("expected {POSITION_SYNTAX}")
    }

    /// The offset this position names in a partition holding `log_start..end`, for the
    /// relative forms; `None` for the absolute ones, which the broker resolves.
    pub fn relative_offset(self, log_start: i64, end: i64) -> Option<i64> {
        match self {
            Position::Absolute(_) => None,
            Position::FromEnd(n) => Some(end.saturating_sub(n).max(log_start)),
            Position::FromStart(n) => Some(log_start.saturating_add(n).min(end)),
        }
    }
}

/// Milliseconds since the epoch of an ISO-8601 time with a zone (`Z` or `±HH:MM`), or of a
/// date's midnight UTC.
///
/// # Errors
/// What is wrong with the text.
pub fn parse_iso8601(text: &str) -> Result<i64, String> {
    let form = "expected an ISO-8601 time such as 2026-12-01T10:00:00Z";
    let (date, rest) = match text.split_once(['T', 't']) {
        Some((date, rest)) => (date, Some(rest)),
        None => (text, None),
    };
    let fields: Vec<&str> = date.split('-').collect();
    let [year, month, day] = fields.as_slice() else {
        return Err(form.to_string());
    };
    let number = |s: &str, len: usize, what: &str| -> Result<i64, String> {
        if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{what} {s:?}: {form}"));
        }
        s.parse().map_err(|_| format!("{what} {s:?}: {form}"))
    };
    let (year, month, day) = (
        number(year, 4, "year")?,
        number(month, 2, "month")?,
        number(day, 2, "day")?,
    );
    if year < 1970 {
        return Err("a time must not be before 1970".to_string());
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("{date:?} is not a calendar date"));
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let Some(rest) = rest else {
        return Ok(ms);
    };
    let zone_at = rest.find(['Z', 'z', '+', '-']).ok_or_else(|| {
        "the time needs a zone: end it with Z (UTC) or an offset like +01:00".to_string()
    })?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (clock, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let (hour, minute, second) = match parts.as_slice() {
        [h, m] => (number(h, 2, "hour")?, number(m, 2, "minute")?, 0),
        [h, m, s] => (
            number(h, 2, "hour")?,
            number(m, 2, "minute")?,
            number(s, 2, "second")?,
        ),
        _ => return Err(form.to_string()),
    };
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!("{clock:?} is not a time of day"));
    }
    ms += (hour * 3600 + minute * 60 + second) * 1000;
    if let Some(fraction) = fraction {
        if fraction.is_empty()
            || fraction.len() > 9
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!("fraction {fraction:?}: {form}"));
        }
        // Milliseconds: the first three digits, padded; finer digits are cut (records carry ms).
        let padded = format!("{fraction:0<3}");
        ms += padded[..3].parse::<i64>().map_err(|_| form.to_string())?;
    }
    let offset_minutes = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..]
                .split_once(':')
                .ok_or_else(|| format!("zone {zone:?}: use Z or ±HH:MM"))?;
            let (h, m) = (number(h, 2, "zone hour")?, number(m, 2, "zone minute")?);
            if h > 23 || m > 59 {
                return Err(format!("zone {zone:?}: use Z or ±HH:MM"));
            }
            sign * (h * 60 + m)
        }
    };
    let ms = ms - offset_minutes * 60_000;
    if ms < 0 {
        return Err("a time must not be before 1970".to_string());
    }
    Ok(ms)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn parse(text: &str) -> Position {
        Position::parse("--from", text).unwrap()
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(parse("earliest"), Position::Absolute(Seek::Earliest));
        assert_eq!(parse("latest"), Position::Absolute(Seek::Latest));
        assert_eq!(parse("42"), Position::Absolute(Seek::Offset(42)));
        assert_eq!(parse("-10"), Position::FromEnd(10));
        assert_eq!(parse("+3"), Position::FromStart(3));
        assert_eq!(
            parse("@1767225600000"),
            Position::Absolute(Seek::Timestamp(1_767_225_600_000))
        );
        assert_eq!(
            parse("2026-01-01T00:00:00Z"),
            Position::Absolute(Seek::Timestamp(1_767_225_600_000))
        );
    }

    #[test]
    fn iso_times_match_unix_milliseconds() {
        for (text, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-12-01T10:00:00Z", 1_796_119_200_000),
            ("2026-12-01T11:00:00+01:00", 1_796_119_200_000),
            ("2026-12-01T05:30:00-04:30", 1_796_119_200_000),
            ("2026-12-01T10:00:00.250Z", 1_796_119_200_250),
            ("2026-12-01T10:00:00.5Z", 1_796_119_200_500),
            ("2026-12-01T10:00Z", 1_796_119_200_000),
            ("2026-12-01", 1_796_083_200_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
        ] {
            assert_eq!(parse_iso8601(text).unwrap(), ms, "{text}");
        }
    }

    #[test]
    fn bad_positions_name_the_flag_and_the_form() {
        for (text, why) in [
            ("soon", "expected earliest|latest"),
            ("-x", "number of records"),
            ("+-1", "number of records"),
            ("@soon", "milliseconds"),
            ("@-5", "before 1970"),
            ("2026-12-01T10:00:00", "needs a zone"),
            ("2026-13-01T10:00:00Z", "not a calendar date"),
            ("2025-02-29", "not a calendar date"),
            ("2026-12-01T24:00:00Z", "not a time of day"),
            ("2026-12-01T10:00:00+1", "zone"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("99999999999999999999", "too large"),
        ] {
            let err = Position::parse("--to", text).unwrap_err();
            let line = format!("{err:#}");
            assert!(line.starts_with(&format!("--to {text:?}")), "{line}");
            assert!(line.contains(why), "{text}: {line}");
            assert!(err.is::<crate::usage_error::UsageError>());
        }
    }

    #[test]
    fn relative_positions_stay_inside_the_partition() {
        assert_eq!(Position::FromEnd(10).relative_offset(5, 100), Some(90));
        assert_eq!(Position::FromEnd(10).relative_offset(95, 100), Some(95));
        assert_eq!(Position::FromStart(10).relative_offset(5, 100), Some(15));
        assert_eq!(Position::FromStart(1000).relative_offset(5, 100), Some(100));
        assert_eq!(Position::Absolute(Seek::Latest).relative_offset(0, 1), None);
    }
}
