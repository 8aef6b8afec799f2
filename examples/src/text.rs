//! Text that came from a peer or a file (tags, annotations, media types, platforms, error
//! messages, registry messages, paths from a list file), made safe to print: control characters
//! (C0, DEL, C1: escape sequences, newlines, carriage returns, NUL) and the bidirectional
//! formatting characters that reorder what a terminal shows are written as Rust escapes
//! (`\u{1b}`, `\n`, `\0`, `\u{202e}`); everything else, quotes, backslashes and non-ASCII letters
//! included, is kept as it is.
//!
//! `str::escape_debug` is close but not it: it also escapes quotes and backslashes, so the
//! messages of this crate (`tag "v1" not found`) would come out as `tag \"v1\" not found`.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` is escaped when printed.
fn hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn write_escaped(out: &mut dyn Write, s: &str) -> fmt::Result {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if hostile(c) {
            out.write_str(&s[start..i])?;
            match c {
                '\n' => out.write_str("\\n")?,
                '\r' => out.write_str("\\r")?,
                '\t' => out.write_str("\\t")?,
                '\0' => out.write_str("\\0")?,
                c => write!(out, "{}", c.escape_unicode())?,
            }
            start = i + c.len_utf8();
        }
    }
    out.write_str(&s[start..])
}

/// `s` with its control characters escaped (borrowed when there is nothing to escape).
///
/// ```
/// use oci_examples::escape;
/// assert_eq!(escape("v1"), "v1");
/// assert_eq!(escape("a\u{1b}[31mred\nb\0"), "a\\u{1b}[31mred\\nb\\0");
/// assert_eq!(escape("tag \"é\" C:\\x"), "tag \"é\" C:\\x");
/// assert_eq!(escape("\u{202e}txt.exe"), "\\u{202e}txt.exe");
/// ```
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    // Writing into a String cannot fail.
    let _ = write_escaped(&mut out, s);
    Cow::Owned(out)
}

/// Displays `T` with control characters escaped, as [`escape`] does, without an intermediate
/// string. Padding and precision flags are not applied.
///
/// ```
/// use oci_examples::Escaped;
/// assert_eq!(Escaped("x\u{7}y").to_string(), "x\\u{7}y");
/// ```
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                write_escaped(self.0, s)
            }
        }
        write!(Escaping(f), "{}", self.0)
    }
}

/// JSON text written by `serde_json` made safe to print: `serde_json` escapes the C0 controls in
/// strings but writes DEL, the C1 controls (U+009B is a CSI to some terminals) and the
/// bidirectional formatting characters raw; they are written as `\uXXXX` escapes here, which
/// keeps the document valid and equal. Outside strings such JSON holds none of them.
///
/// ```
/// let json = serde_json::to_string(&"a\u{1b}b\u{9b}c\u{7f}").unwrap();
/// let safe = oci_examples::escape_json(&json);
/// assert_eq!(safe, r#""a\u001bb\u009bc\u007f""#);
/// assert_eq!(serde_json::from_str::<String>(&safe).unwrap(), "a\u{1b}b\u{9b}c\u{7f}");
/// ```
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(hostile) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            // Pretty-printing's own layout; serde_json escapes these inside strings.
            '\n' | '\t' | '\r' => out.push(c),
            c if hostile(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// An error and its sources joined by `": "`, each escaped ([`oci_store::error_chain`], safe to
/// print: registry messages and tags inside errors come from peers).
///
/// ```
/// let e = std::io::Error::other("registry said: \u{1b}]0;owned\u{7}");
/// assert_eq!(oci_examples::chain(&e), "registry said: \\u{1b}]0;owned\\u{7}");
/// ```
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    escape(&oci_store::error_chain(e)).into_owned()
}
