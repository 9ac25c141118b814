//! The notAfter of an X.509 certificate, read straight from its DER (RFC 5280 §4.1): a few
//! lines of tag-length-value walking rather than a full X.509 parser in the dependency tree.
//! Only the path to `tbsCertificate.validity` is read; everything else is skipped unparsed, and
//! the TLS library still checks the whole certificate at handshake.

/// A certificate's notAfter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotAfter {
    /// Seconds since the Unix epoch (UTC).
    pub(crate) unix_secs: i64,
    /// As written in the certificate, e.g. `2026-12-05 03:40:00 UTC`.
    pub(crate) text: String,
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The notAfter of the certificate `der`.
///
/// # Errors
/// What is malformed, when `der` is not a certificate this walk can read.
pub(crate) fn not_after(der: &[u8]) -> Result<NotAfter, String> {
    let (certificate, _) = expect(der, SEQUENCE, "certificate")?;
    let (mut tbs, _) = expect(certificate, SEQUENCE, "tbsCertificate")?;
    if tbs.first() == Some(&VERSION) {
        tbs = tlv(tbs).ok_or("truncated version")?.2;
    }
    // serialNumber, signature, issuer: skipped whole.
    for field in ["serialNumber", "signature", "issuer"] {
        tbs = tlv(tbs).ok_or_else(|| format!("truncated {field}"))?.2;
    }
    let (validity, _) = expect(tbs, SEQUENCE, "validity")?;
    let (_, _, after_not_before) = tlv(validity).ok_or("truncated notBefore")?;
    let (tag, time, _) = tlv(after_not_before).ok_or("truncated notAfter")?;
    parse_time(tag, time)
}

/// The content of the TLV at the start of `input` if its tag is `tag`, and what follows it.
fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    match tlv(input) {
        Some((found, content, rest)) if found == tag => Ok((content, rest)),
        Some((found, _, _)) => Err(format!("{what}: tag 0x{found:02x}, not 0x{tag:02x}")),
        None => Err(format!("{what}: truncated")),
    }
}

/// Splits one DER TLV off `input`: (tag, content, rest). Single-byte tags only, which is all
/// the path to the validity uses; lengths in short form or up to four bytes of long form.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let length_bytes = usize::from(first & 0x7F);
        if length_bytes == 0 || length_bytes > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(length_bytes)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &byte| (acc << 8) | usize::from(byte))
    };
    let (content, rest) = rest.split_at_checked(length)?;
    Some((tag, content, rest))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950 to 2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), the
/// two forms RFC 5280 §4.1.2.5 allows.
fn parse_time(tag: u8, bytes: &[u8]) -> Result<NotAfter, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "notAfter is not ASCII".to_string())?;
    let (year, rest) = match tag {
        UTC_TIME if text.len() == 13 => {
            let short = digits(text, 0, 2)?;
            (
                if short >= 50 {
                    1900 + short
                } else {
                    2000 + short
                },
                2,
            )
        }
        GENERALIZED_TIME if text.len() == 15 => (digits(text, 0, 4)?, 4),
        _ => {
            return Err(format!(
                "notAfter {text:?} is not a UTCTime or GeneralizedTime"
            ));
        }
    };
    if !text.ends_with('Z') {
        return Err(format!("notAfter {text:?} is not in UTC"));
    }
    let field = |idx: usize| digits(text, rest + idx * 2, 2);
    let (month, day, hour, minute, second) =
        (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(format!("notAfter {text:?} is not a valid time"));
    }
    let days = days_from_civil(year, month, day);
    Ok(NotAfter {
        unix_secs: days * 86_400 + hour * 3_600 + minute * 60 + second,
        text: format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC"),
    })
}

fn digits(text: &str, start: usize, count: usize) -> Result<i64, String> {
    text.get(start..start + count)
        .filter(|part| part.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|part| part.parse().ok())
        .ok_or_else(|| format!("notAfter {text:?} is malformed"))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn both_time_forms_are_read() {
        let utc = parse_time(UTC_TIME, b"700101000000Z").unwrap();
        assert_eq!(utc.unix_secs, 0);
        let generalized = parse_time(GENERALIZED_TIME, b"20261205034000Z").unwrap();
        assert_eq!(generalized.unix_secs, 1_796_442_000);
        assert_eq!(generalized.text, "2026-12-05 03:40:00 UTC");
        assert_eq!(
            parse_time(UTC_TIME, b"491231235959Z").unwrap().unix_secs,
            2_524_607_999
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for der in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x02\x30\x00",
            b"\x30\x80",
        ] {
            assert!(not_after(der).is_err(), "{der:?}");
        }
        assert!(parse_time(UTC_TIME, b"70013100000Z").is_err());
        assert!(parse_time(UTC_TIME, b"701301000000Z").is_err());
        assert!(parse_time(GENERALIZED_TIME, b"2026120503400+0").is_err());
    }
}
