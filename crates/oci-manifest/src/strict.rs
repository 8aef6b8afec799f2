//! A streaming pass over raw JSON that rejects objects with the same key twice, at any depth.
//!
//! serde_json (like Go's encoding/json) silently keeps the last of two equal keys while other
//! parsers keep the first: a manifest with duplicate keys can mean two different things to two
//! tools under one digest. Keys are compared after unescaping, so `"a"` and `"\u0061"` collide.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A duplicate key found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Duplicate {
    pub key: String,
    pub path: String,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(json: &str) -> Option<(String, String)> {
        match check(json.as_bytes()) {
            Ok(()) => None,
            Err(StrictError::Duplicate(d)) => Some((d.key, d.path)),
            Err(StrictError::Json(e)) => panic!("unexpected JSON error for {json}: {e}"),
        }
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
        // Same key in sibling objects is fine.
        assert_eq!(dup(r#"[{"a":1},{"a":1}]"#), None);
    }

    #[test]
    fn large_objects_use_the_set() {
        let mut s = String::from("{");
        for i in 0..100 {
            s.push_str(&format!("\"k{i}\":{i},"));
        }
        s.push_str("\"k5\":0}");
        assert_eq!(dup(&s), Some(("k5".into(), "$".into())));
        let ok = s.replace("\"k5\":0}", "\"k100\":0}");
        assert_eq!(dup(&ok), None);
    }

    #[test]
    fn json_errors_are_not_duplicates() {
        for bad in [
            "",
            "{",
            "{\"a\":1} x",
            "{'a':1}",
            "\u{feff}{}",
            "{\"a\":\"\\ud800\"}",
        ] {
            assert!(
                matches!(check(bad.as_bytes()), Err(StrictError::Json(_))),
                "{bad:?}"
            );
        }
        assert!(check(b" {} \n").is_ok());
    }
}
