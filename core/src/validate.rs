//! Checks on caller input, run before anything is written; each names the field at fault.

use crate::error::{Error, Result};
use crate::model::Coordinates;

/// Longest single-line text field (names, places, titles), in bytes.
pub(crate) const MAX_LINE: usize = 500;
/// Longest notes or comment text, in bytes.
pub(crate) const MAX_NOTES: usize = 1 << 20;
/// Earliest accepted time: 2000-01-01 (ms).
const MIN_TIME: i64 = 946_684_800_000;
/// Latest accepted time: 2100-01-01 (ms).
const MAX_TIME: i64 = 4_102_444_800_000;

/// A taxonomy key or tag: 1-64 characters of `a-z`, `0-9`, `_`, `-`.
pub(crate) fn key(field: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 64 {
        return Err(Error::invalid(field, "must be 1 to 64 characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(Error::invalid(
            field,
            "may contain only lowercase letters, digits, '_' and '-'",
        ));
    }
    Ok(())
}

/// Each of `keys` is a valid key.
pub(crate) fn keys(field: &str, keys: &[String]) -> Result<()> {
    keys.iter().try_for_each(|k| key(field, k))
}

/// A single-line text of at most `MAX_LINE` bytes.
pub(crate) fn line(field: &str, s: &str) -> Result<()> {
    if s.len() > MAX_LINE {
        return Err(Error::invalid(
            field,
            format!("longer than {MAX_LINE} bytes"),
        ));
    }
    if s.contains(['\0', '\n', '\r']) {
        return Err(Error::invalid(field, "must be a single line without NUL"));
    }
    Ok(())
}

/// A required single-line text.
pub(crate) fn required_line(field: &str, s: &str) -> Result<()> {
    if s.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    line(field, s)
}

/// Notes or comments of at most `MAX_NOTES` bytes.
pub(crate) fn notes(field: &str, s: &str) -> Result<()> {
    if s.len() > MAX_NOTES {
        return Err(Error::invalid(
            field,
            format!("longer than {MAX_NOTES} bytes"),
        ));
    }
    if s.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL"));
    }
    Ok(())
}

/// A time in ms between 2000 and 2100.
pub(crate) fn time(field: &str, t: i64) -> Result<()> {
    if !(MIN_TIME..MAX_TIME).contains(&t) {
        return Err(Error::invalid(
            field,
            "must be milliseconds since 1970 between the years 2000 and 2100",
        ));
    }
    Ok(())
}

/// A calendar date `YYYY-MM-DD`.
pub(crate) fn date(field: &str, s: &str) -> Result<()> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format)
        .map(|_| ())
        .map_err(|_| Error::invalid(field, "must be a date written YYYY-MM-DD"))
}

/// A record or attendee id: 32 lowercase hex digits.
pub(crate) fn id(field: &str, s: &str) -> Result<()> {
    if s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(Error::invalid(field, "must be 32 lowercase hex digits"))
    }
}

/// Coordinates within range with a precision of 0 to 6 decimals.
pub(crate) fn coordinates(c: &Coordinates) -> Result<()> {
    if !(c.lat.is_finite() && (-90.0..=90.0).contains(&c.lat)) {
        return Err(Error::invalid(
            "coordinates.lat",
            "must be between -90 and 90",
        ));
    }
    if !(c.lon.is_finite() && (-180.0..=180.0).contains(&c.lon)) {
        return Err(Error::invalid(
            "coordinates.lon",
            "must be between -180 and 180",
        ));
    }
    if c.precision > 6 {
        return Err(Error::invalid(
            "coordinates.precision",
            "must be 0 to 6 decimals",
        ));
    }
    Ok(())
}

/// A count a person typed: at most one million.
pub(crate) fn count(field: &str, n: u32) -> Result<()> {
    if n > 1_000_000 {
        return Err(Error::invalid(field, "must be at most 1,000,000"));
    }
    Ok(())
}
