//! The JSON that Go's `encoding/json` writes, for the parts of a converted configuration that
//! skopeo (containers/image) builds with it: strings escaped as Go escapes them (HTML
//! characters included), raw values compacted as `json.Marshal` compacts a `json.RawMessage`,
//! and times as `time.Time` writes them (RFC 3339 with nanoseconds, trailing zeros cut).
//! Writing the same bytes gives the converted configuration the same digest as skopeo's.

use std::fmt::Write as _;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string the way Go's `json.Marshal` does (with HTML escaping: `<`,
/// `>` and `&` as `\u003c`, `\u003e`, `\u0026`; U+2028 and U+2029 escaped; control characters
/// other than `\n`, `\r`, `\t` as `\u00XX`).
pub(super) fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u32 as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends valid JSON `raw` compacted as Go compacts a `json.RawMessage` it marshals:
/// whitespace outside strings removed, `<`, `>`, `&`, U+2028 and U+2029 escaped, everything
/// else (escapes, numbers, key order) kept as written.
pub(super) fn compact(raw: &str, out: &mut String) {
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// A time as read from an RFC 3339 string, kept as its parts so that it is written back as Go
/// writes a `time.Time` (the offset it was given in, nanoseconds without trailing zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GoTime {
    /// `YYYY-MM-DDTHH:MM:SS`.
    date_time: String,
    /// The fraction of a second, at most 9 digits, without trailing zeros (may be empty).
    fraction: String,
    /// Offset from UTC in minutes.
    offset_minutes: i32,
}

impl GoTime {
    /// Go's zero `time.Time` (what a missing `created` becomes).
    pub(super) fn zero() -> GoTime {
        GoTime {
            date_time: "0001-01-01T00:00:00".to_owned(),
            fraction: String::new(),
            offset_minutes: 0,
        }
    }

    /// Parses an RFC 3339 time as Go's `time.Time` JSON decoding accepts it
    /// (`2006-01-02T15:04:05[.fraction](Z|±hh:mm)`, with the ranges of a real date).
    pub(super) fn parse(s: &str) -> Option<GoTime> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in(month, year)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut i = 19;
        let mut fraction = String::new();
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j == start {
                return None;
            }
            fraction = s[start..j.min(start + 9)].trim_end_matches('0').to_owned();
            i = j;
        }
        let offset_minutes = match &b[i..] {
            [b'Z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let digits = [*h1, *h2, *m1, *m2];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let h = i32::from(h1 - b'0') * 10 + i32::from(h2 - b'0');
                let m = i32::from(m1 - b'0') * 10 + i32::from(m2 - b'0');
                if h > 23 || m > 59 {
                    return None;
                }
                let v = h * 60 + m;
                if *sign == b'-' { -v } else { v }
            }
            _ => return None,
        };
        Some(GoTime {
            date_time: s[..19].to_owned(),
            fraction,
            offset_minutes,
        })
    }

    /// Appends the time as Go's `time.Time` marshals it, quoted.
    pub(super) fn write(&self, out: &mut String) {
        out.push('"');
        out.push_str(&self.date_time);
        if !self.fraction.is_empty() {
            out.push('.');
            out.push_str(&self.fraction);
        }
        if self.offset_minutes == 0 {
            out.push('Z');
        } else {
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            let m = self.offset_minutes.unsigned_abs();
            // Writing to a String cannot fail.
            let _ = write!(out, "{sign}{:02}:{:02}", m / 60, m % 60);
        }
        out.push('"');
    }
}

fn days_in(month: u32, year: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The members of the JSON object `raw` (valid JSON, checked by the caller) in document order:
/// each key unescaped and its value's raw text. `None` when `raw` is not an object.
pub(super) fn object_members(raw: &str) -> Option<Vec<(String, &str)>> {
    let b = raw.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        let key_end = string_end(b, i)?;
        let key: String = serde_json::from_str(&raw[i..key_end]).ok()?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        out.push((key, &raw[start..end]));
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(out),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index just past the string starting at `i` (a `"`).
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The index just past the value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            Some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_go_does() {
        let mut s = String::new();
        string("a<b>&\"\\\n\t\u{1}\u{2028}é", &mut s);
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\t\u0001\u2028é""#);
    }

    #[test]
    fn raw_values_are_compacted_as_go_does() {
        let mut s = String::new();
        compact("{ \"a\" : [1, 2],\n \"b\": \"x y<\\\"\" }", &mut s);
        assert_eq!(s, r#"{"a":[1,2],"b":"x y\u003c\""}"#);
    }

    #[test]
    fn times_round_trip_as_go_writes_them() {
        for (input, want) in [
            (
                "2016-09-23T18:08:51.133779867Z",
                "2016-09-23T18:08:51.133779867Z",
            ),
            ("2016-09-23T18:08:51.100Z", "2016-09-23T18:08:51.1Z"),
            ("2016-09-23T18:08:51.000Z", "2016-09-23T18:08:51Z"),
            ("2016-09-23T18:08:51+00:00", "2016-09-23T18:08:51Z"),
            ("2016-09-23T18:08:51.5-07:30", "2016-09-23T18:08:51.5-07:30"),
            (
                "2016-09-23T18:08:51.1234567891Z",
                "2016-09-23T18:08:51.123456789Z",
            ),
        ] {
            let mut s = String::new();
            GoTime::parse(input).unwrap().write(&mut s);
            assert_eq!(s, format!("\"{want}\""), "{input}");
        }
        for bad in [
            "",
            "2016-13-01T00:00:00Z",
            "2015-02-29T00:00:00Z",
            "2016-09-23 18:08:51Z",
            "2016-09-23T18:08:51",
            "2016-09-23T18:08:51.Z",
        ] {
            assert!(GoTime::parse(bad).is_none(), "{bad}");
        }
        let mut s = String::new();
        GoTime::zero().write(&mut s);
        assert_eq!(s, "\"0001-01-01T00:00:00Z\"");
    }

    #[test]
    fn object_members_keep_order_and_raw_values() {
        let m = object_members(r#" { "b" : {"x": [1, "}"]}, "a\u0041":null , "c":"s" } "#).unwrap();
        let keys: Vec<_> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "aA", "c"]);
        assert_eq!(m[0].1, r#"{"x": [1, "}"]}"#);
        assert_eq!(m[1].1, "null");
        assert!(object_members("[1]").is_none());
        assert_eq!(object_members("{}").unwrap().len(), 0);
    }
}
