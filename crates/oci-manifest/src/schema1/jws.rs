//! The payload of a signed schema 1 manifest (libtrust "pretty JWS"): the bytes the signatures
//! (and registries' digests) cover are the document without its `signatures` member, rebuilt
//! from the first `formatLength` bytes and the base64url `formatTail` of a protected header.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;

/// The `signatures` member as far as the payload needs it.
#[derive(Deserialize)]
struct Signed {
    signatures: Option<Vec<Signature>>,
}

#[derive(Deserialize)]
struct Signature {
    protected: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Protected {
    format_length: usize,
    format_tail: String,
}

/// Decodes base64url with or without padding (libtrust pads before decoding).
fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// The payload of `raw`: `raw` itself when it has no signatures, else the bytes every
/// signature's protected header describes (they must all describe the same bytes).
///
/// Returns `(payload, signed)`, or the reason the signatures are malformed.
pub(super) fn payload(raw: &Bytes) -> Result<(Bytes, bool), String> {
    let signed: Signed =
        serde_json::from_slice(raw).map_err(|e| format!("not a JSON object: {e}"))?;
    let Some(signatures) = signed.signatures else {
        return Ok((raw.clone(), false));
    };
    if signatures.is_empty() {
        return Err("\"signatures\" is empty".to_owned());
    }
    let mut found: Option<Bytes> = None;
    for (i, s) in signatures.iter().enumerate() {
        let header = b64url(&s.protected)
            .ok_or_else(|| format!("signatures[{i}].protected is not base64url"))?;
        let p: Protected = serde_json::from_slice(&header)
            .map_err(|e| format!("signatures[{i}].protected is not a libtrust header: {e}"))?;
        if p.format_length > raw.len() {
            return Err(format!(
                "signatures[{i}]: formatLength {} is past the end of the {} bytes",
                p.format_length,
                raw.len()
            ));
        }
        let tail = b64url(&p.format_tail)
            .ok_or_else(|| format!("signatures[{i}].formatTail is not base64url"))?;
        let mut buf = BytesMut::with_capacity(p.format_length + tail.len());
        buf.extend_from_slice(&raw[..p.format_length]);
        buf.extend_from_slice(&tail);
        let this = buf.freeze();
        match &found {
            Some(prev) if *prev != this => {
                return Err(format!(
                    "signatures[{i}] covers other bytes than signatures[0]"
                ));
            }
            Some(_) => {}
            None => found = Some(this),
        }
    }
    // Not empty: checked above.
    found
        .map(|p| (p, true))
        .ok_or_else(|| "\"signatures\" is empty".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(payload: &str, keep: usize) -> Bytes {
        // The document: the payload cut at `keep`, a signatures member, then the tail.
        let (head, tail) = payload.split_at(keep);
        let protected = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"formatLength":{keep},"formatTail":"{}","time":"2020-01-01T00:00:00Z"}}"#,
            URL_SAFE_NO_PAD.encode(tail)
        ));
        Bytes::from(format!(
            r#"{head},"signatures":[{{"header":{{"alg":"ES256"}},"signature":"c2ln","protected":"{protected}"}}]{tail}"#
        ))
    }

    #[test]
    fn payload_is_rebuilt_from_the_protected_header() {
        let p = "{\n   \"schemaVersion\": 1,\n   \"name\": \"x\"\n}";
        let keep = p.rfind('\n').unwrap();
        let doc = sign(p, keep);
        let (got, signed) = payload(&doc).unwrap();
        assert!(signed);
        assert_eq!(&got[..], p.as_bytes());
    }

    #[test]
    fn unsigned_is_its_own_payload_and_bad_headers_are_refused() {
        let raw = Bytes::from_static(br#"{"schemaVersion":1}"#);
        assert_eq!(payload(&raw).unwrap(), (raw.clone(), false));
        for bad in [
            r#"{"signatures":[]}"#,
            r#"{"signatures":[{"protected":"!!"}]}"#,
            // formatLength past the end.
            r#"{"signatures":[{"protected":"eyJmb3JtYXRMZW5ndGgiOjk5OTksImZvcm1hdFRhaWwiOiIifQ"}]}"#,
        ] {
            assert!(payload(&Bytes::from(bad)).is_err(), "{bad}");
        }
    }
}
