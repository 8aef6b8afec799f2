//! A pass over raw JSON that finds objects with the same key twice, at any depth.
//!
//! serde_json (like Go's encoding/json) silently keeps the last of two equal keys while other
//! parsers keep the first: a manifest with duplicate keys can mean two different things to two
//! tools under one digest. Keys are compared after unescaping, so `"a"` and `"\u0061"` collide.
//!
//! The scanner only tokenises (strings, brackets, commas, colons); it does not validate JSON.
//! It is exact on valid JSON, which is the only JSON it matters for: the typed parse
//! (serde_json) rejects anything invalid, and on such bytes [`find_duplicate`] is only
//! consulted to name a duplicate that serde reported as an error. It runs on a heap stack, so
//! deep nesting cannot overflow the thread's stack.

use std::borrow::Cow;
use std::collections::HashSet;

/// A duplicate key found by [`find_duplicate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Duplicate {
    /// The key, unescaped.
    pub key: String,
    /// Where the object holding it is, as a JSON path (`$`, `$.layers[0].annotations`).
    pub path: String,
}

/// Objects with more keys than this switch from a linear scan to a hash set.
const LINEAR_KEYS: usize = 16;

enum Frame<'a> {
    Object {
        /// Start of this object's keys in the shared key stack.
        keys_start: usize,
        /// Set once the object has more than [`LINEAR_KEYS`] keys.
        set: Option<HashSet<Cow<'a, [u8]>>>,
        /// True where the next string is a key (after `{` or `,`).
        expect_key: bool,
        /// The last key read, for paths.
        current: Option<Cow<'a, [u8]>>,
    },
    Array {
        index: usize,
    },
}

/// The first duplicate key in `raw`, if any (exact when `raw` is valid JSON).
pub(crate) fn find_duplicate(raw: &[u8]) -> Option<Duplicate> {
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut keys: Vec<Cow<'_, [u8]>> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'{' => stack.push(Frame::Object {
                keys_start: keys.len(),
                set: None,
                expect_key: true,
                current: None,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                if let Some(Frame::Object { keys_start, .. }) = stack.pop() {
                    keys.truncate(keys_start);
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b'"' => {
                let start = i + 1;
                let mut escaped = false;
                let mut j = skip_plain(raw, start);
                while j < raw.len() && raw[j] != b'"' {
                    if raw[j] == b'\\' {
                        escaped = true;
                        j += 1;
                    }
                    j = skip_plain(raw, j + 1);
                }
                let end = j.min(raw.len());
                i = end;
                if let Some(Frame::Object {
                    keys_start,
                    set,
                    expect_key: expect_key @ true,
                    current,
                }) = stack.last_mut()
                {
                    *expect_key = false;
                    let key: Cow<'_, [u8]> = if escaped {
                        // Quotes included: serde_json does the unescaping.
                        match serde_json::from_slice::<String>(
                            &raw[start - 1..(end + 1).min(raw.len())],
                        ) {
                            Ok(k) => Cow::Owned(k.into_bytes()),
                            Err(_) => Cow::Borrowed(&raw[start..end]),
                        }
                    } else {
                        Cow::Borrowed(&raw[start..end])
                    };
                    let seen = match set {
                        Some(set) => !set.insert(key.clone()),
                        None => {
                            let seen = keys[*keys_start..].contains(&key);
                            if !seen {
                                keys.push(key.clone());
                                if keys.len() - *keys_start > LINEAR_KEYS {
                                    *set = Some(keys.drain(*keys_start..).collect());
                                }
                            }
                            seen
                        }
                    };
                    if seen {
                        return Some(Duplicate {
                            key: String::from_utf8_lossy(&key).into_owned(),
                            path: path_of(&stack[..stack.len() - 1]),
                        });
                    }
                    *current = Some(key);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The first index from `from` holding `"` or `\\` (or `raw.len()`), eight bytes at a time.
fn skip_plain(raw: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let mut i = from;
    while let Some(chunk) = raw.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        if has_zero_byte(x ^ (ONES * u64::from(b'"')))
            || has_zero_byte(x ^ (ONES * u64::from(b'\\')))
        {
            break;
        }
        i += 8;
    }
    while i < raw.len() && raw[i] != b'"' && raw[i] != b'\\' {
        i += 1;
    }
    i
}

/// The JSON path of the innermost frame's container, from the frames enclosing it.
fn path_of(frames: &[Frame<'_>]) -> String {
    let mut path = String::from("$");
    for f in frames {
        match f {
            Frame::Object { current, .. } => {
                let k = current
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    path.push('.');
                    path.push_str(&k);
                } else {
                    path.push('[');
                    path.push_str(&serde_json::to_string(&*k).unwrap_or_default());
                    path.push(']');
                }
            }
            Frame::Array { index } => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
        }
    }
    path
}

/// The first, simple implementation: a serde visitor over the whole document. Kept as the
/// oracle the fast scanner is tested against.
#[cfg(test)]
mod oracle {
    use std::borrow::Cow;
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::Duplicate;

    /// The outcome of a strict pass that failed.
    #[derive(Debug)]
    pub(crate) enum StrictError {
        Duplicate(Duplicate),
        Json(serde_json::Error),
    }

    /// Checks `raw` is one JSON value with no duplicate keys in any object.
    pub(crate) fn check(raw: &[u8]) -> Result<(), StrictError> {
        let mut trail = Trail::default();
        let mut de = serde_json::Deserializer::from_slice(raw);
        let res = Strict { trail: &mut trail }.deserialize(&mut de);
        let res = res.and_then(|()| de.end());
        match res {
            Ok(()) => Ok(()),
            Err(e) => match trail.duplicate {
                Some(key) => {
                    let mut path = String::from("$");
                    for seg in trail.segments.iter().rev() {
                        match seg {
                            Seg::Key(k) if is_plain(k) => {
                                path.push('.');
                                path.push_str(k);
                            }
                            Seg::Key(k) => {
                                path.push('[');
                                path.push_str(&serde_json::to_string(k).unwrap_or_default());
                                path.push(']');
                            }
                            Seg::Index(i) => {
                                path.push('[');
                                path.push_str(&i.to_string());
                                path.push(']');
                            }
                        }
                    }
                    Err(StrictError::Duplicate(Duplicate { key, path }))
                }
                None => Err(StrictError::Json(e)),
            },
        }
    }

    fn is_plain(k: &str) -> bool {
        !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    enum Seg {
        Key(String),
        Index(usize),
    }

    /// Filled only on the way out of an error: the duplicate key, then the path segments from the
    /// innermost object outwards.
    #[derive(Default)]
    struct Trail {
        duplicate: Option<String>,
        segments: Vec<Seg>,
    }

    struct Strict<'t> {
        trail: &'t mut Trail,
    }

    impl<'de> DeserializeSeed<'de> for Strict<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    /// Maps with more keys than this switch from a linear scan to a hash set.
    const LINEAR_KEYS: usize = 16;

    impl<'de> Visitor<'de> for Strict<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0usize;
            loop {
                match seq.next_element_seed(Strict {
                    trail: &mut *self.trail,
                }) {
                    Ok(Some(())) => i += 1,
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        if self.trail.duplicate.is_some() {
                            self.trail.segments.push(Seg::Index(i));
                        }
                        return Err(e);
                    }
                }
            }
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut few: Vec<Cow<'de, str>> = Vec::new();
            let mut many: Option<HashSet<Cow<'de, str>>> = None;
            while let Some(key) = map.next_key_seed(KeySeed)? {
                let seen = match &mut many {
                    Some(set) => !set.insert(key.clone()),
                    None => {
                        let seen = few.contains(&key);
                        if !seen {
                            few.push(key.clone());
                            if few.len() > LINEAR_KEYS {
                                many = Some(few.drain(..).collect());
                            }
                        }
                        seen
                    }
                };
                if seen {
                    self.trail.duplicate = Some(key.into_owned());
                    return Err(de::Error::custom("duplicate key"));
                }
                if let Err(e) = map.next_value_seed(Strict {
                    trail: &mut *self.trail,
                }) {
                    if self.trail.duplicate.is_some() {
                        self.trail.segments.push(Seg::Key(key.into_owned()));
                    }
                    return Err(e);
                }
            }
            Ok(())
        }
    }

    struct KeySeed;

    impl<'de> DeserializeSeed<'de> for KeySeed {
        type Value = Cow<'de, str>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(KeySeed)
        }
    }

    impl<'de> Visitor<'de> for KeySeed {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object key")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The scanner's answer, checked against the oracle's on the same (valid) JSON.
    fn dup(json: &str) -> Option<(String, String)> {
        let fast = find_duplicate(json.as_bytes()).map(|d| (d.key, d.path));
        let slow = match oracle::check(json.as_bytes()) {
            Ok(()) => None,
            Err(oracle::StrictError::Duplicate(d)) => Some((d.key, d.path)),
            Err(oracle::StrictError::Json(e)) => panic!("invalid test JSON {json}: {e}"),
        };
        assert_eq!(fast, slow, "scanner and oracle disagree on {json}");
        fast
    }

    #[test]
    fn finds_duplicates_at_any_depth_with_path() {
        assert_eq!(dup(r#"{"a":1,"b":2}"#), None);
        assert_eq!(dup(r#"{"a":1,"a":2}"#), Some(("a".into(), "$".into())));
        assert_eq!(
            dup(r#"{"layers":[{"x":1},{"annotations":{"k":"1","k":"2"}}]}"#),
            Some(("k".into(), "$.layers[1].annotations".into()))
        );
        assert_eq!(
            dup(r#"[[0,{"a b":{"z":1,"z":1}}]]"#),
            Some(("z".into(), r#"$[0][1]["a b"]"#.into()))
        );
        // Escapes are compared after decoding.
        assert_eq!(dup(r#"{"a":1,"\u0061":2}"#), Some(("a".into(), "$".into())));
        assert_eq!(
            dup(r#"{"\"":1,"\u0022":2}"#),
            Some(("\"".into(), "$".into()))
        );
        // Strings that look like structure, values equal to keys, escaped quotes.
        assert_eq!(
            dup(r#"{"a":"a","b":"{\"a\":1,\"a\":2}","c\\":[",","a"]}"#),
            None
        );
        assert_eq!(
            dup(r#"{"k":{"x":[1,{"y":2}],"x2":{}},"k2":"k","k":0}"#),
            Some(("k".into(), "$".into()))
        );
        // Same key in sibling and nested objects is fine.
        assert_eq!(dup(r#"[{"a":1},{"a":{"a":{"a":1}}}]"#), None);
        assert_eq!(dup(r#"{"a":[{"a":1}],"b":{"a":2}}"#), None);
        // Duplicates after a nested object closed.
        assert_eq!(
            dup(r#"{"a":{"b":1,"c":2},"b":{"c":3},"a":4}"#),
            Some(("a".into(), "$".into()))
        );
        assert_eq!(
            dup("\n{ \"a\" : 1 ,\t\"a\" : 2 }\n"),
            Some(("a".into(), "$".into()))
        );
    }

    #[test]
    fn large_objects_use_the_set() {
        let mut s = String::from("{");
        for i in 0..100 {
            s.push_str(&format!("\"k{i}\":{{\"n\":{i}}},"));
        }
        s.push_str("\"k5\":0}");
        assert_eq!(dup(&s), Some(("k5".into(), "$".into())));
        let ok = s.replace("\"k5\":0}", "\"k100\":0}");
        assert_eq!(dup(&ok), None);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        assert_eq!(find_duplicate(deep.as_bytes()), None);
        let deep = format!(
            "{}{{\"a\":1,\"a\":1}}{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            find_duplicate(deep.as_bytes()).map(|d| d.key),
            Some("a".into())
        );
    }

    #[test]
    fn invalid_json_never_panics() {
        for bad in [
            "",
            "{",
            "}",
            "]]]",
            "{\"a",
            "{\"a\\",
            "\"\\",
            "{\"\\u00\":1,\"\\u00\":1}",
            "{\"a\" \"a\"}",
        ] {
            let _ = find_duplicate(bad.as_bytes());
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-c\"\\\\{}\\[\\],:é]{0,4}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-c\"\\\\]{0,2}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Writes `v` as JSON; the `target`-th non-empty object (in writing order) gets its first
    /// key repeated at its end, spelt with `\uXXXX` escapes when `escape`.
    fn emit(
        v: &serde_json::Value,
        target: usize,
        seen: &mut usize,
        escape: bool,
        out: &mut String,
    ) {
        match v {
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    emit(item, target, seen, escape, out);
                }
                out.push(']');
            }
            serde_json::Value::Object(map) if !map.is_empty() => {
                let me = *seen;
                *seen += 1;
                out.push('{');
                for (i, (k, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    emit(item, target, seen, escape, out);
                }
                if me == target {
                    let first = map.keys().next().unwrap();
                    out.push(',');
                    if escape {
                        out.push('"');
                        for unit in first.encode_utf16() {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                        out.push('"');
                    } else {
                        out.push_str(&serde_json::to_string(first).unwrap());
                    }
                    out.push_str(":0");
                }
                out.push('}');
            }
            other => out.push_str(&serde_json::to_string(other).unwrap()),
        }
    }

    proptest! {
        #[test]
        fn skip_plain_finds_the_first_quote_or_backslash(
            bytes in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), any::<u8>()], 0..40),
            from in 0usize..40,
        ) {
            let from = from.min(bytes.len());
            let naive = bytes[from..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\')
                .map_or(bytes.len(), |p| p + from);
            prop_assert_eq!(skip_plain(&bytes, from), naive);
        }

        #[test]
        fn scanner_agrees_with_the_oracle(
            v in json_value(),
            target in 0usize..8,
            escape in any::<bool>(),
        ) {
            let mut plain = String::new();
            let mut objects = 0;
            emit(&v, usize::MAX, &mut objects, escape, &mut plain);
            prop_assert_eq!(dup(&plain), None);
            let mut injected = String::new();
            emit(&v, target, &mut 0, escape, &mut injected);
            let found = dup(&injected);
            prop_assert_eq!(found.is_some(), target < objects, "{}", injected);
        }
    }
}
