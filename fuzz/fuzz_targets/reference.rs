//! Reference parsing: never panics; whatever parses prints back to a string that parses to the
//! same reference (canonical and familiar forms), with a valid registry, a lowercase path within
//! the length limit, and a valid tag. The `WWW-Authenticate` challenge parser never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_distribution_client::{Challenge, MAX_NAME_LENGTH, MAX_TAG_LENGTH, Reference};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        let printed = r.to_string();
        assert_eq!(Reference::parse(&printed).ok().as_ref(), Some(&r), "{printed}");
        assert_eq!(Reference::parse(&r.familiar()).ok().as_ref(), Some(&r));
        assert!(r.registry().len() + 1 + r.repository().len() <= MAX_NAME_LENGTH);
        assert!(!r.repository().chars().any(|c| c.is_ascii_uppercase()));
        assert!(!r.repository().starts_with('/') && !r.repository().contains("//"));
        if let Some(t) = r.tag() {
            assert!(!t.is_empty() && t.len() <= MAX_TAG_LENGTH);
        }
        assert_ne!(r.registry(), "index.docker.io");
    }
    let _ = Challenge::parse(s);
});
