//! Reference parsing (`oci-reference`): never panics; whatever parses prints back to strings
//! that parse to the same reference (canonical, familiar, familiar name), with a valid registry
//! (never `index.docker.io`), a valid lowercase repository path within the length limit (with
//! `library/` on Docker Hub for one-component names) and a valid tag; a bare 64-hex input is
//! refused; an error keeps a bounded, printable copy of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_reference::{
    InvalidReferenceReason, MAX_ERROR_INPUT, MAX_NAME_LENGTH, Reference, validate_registry,
    validate_repository, validate_tag,
};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match Reference::parse(s) {
        Ok(r) => {
            let printed = r.to_string();
            assert_eq!(
                Reference::parse(&printed).ok().as_ref(),
                Some(&r),
                "{printed}"
            );
            assert_eq!(Reference::parse(&r.familiar()).ok().as_ref(), Some(&r));
            let bare = r.without_tag().without_digest();
            assert_eq!(Reference::parse(r.familiar_name()).ok(), Some(bare));
            assert_eq!(r.name(), format!("{}/{}", r.registry(), r.repository()));
            assert!(validate_registry(r.registry()).is_ok());
            assert!(validate_repository(r.repository()).is_ok());
            assert!(r.repository().len() <= MAX_NAME_LENGTH);
            if let Some(t) = r.tag() {
                assert!(validate_tag(t).is_ok());
            }
            assert_ne!(r.registry(), "index.docker.io");
            if r.registry() == "docker.io" {
                assert!(r.repository().contains('/'));
            }
        }
        Err(e) => {
            let is_id = s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            assert_eq!(
                e.reason == InvalidReferenceReason::HexRepository,
                is_id,
                "{s:?}"
            );
            assert!(e.input.len() <= MAX_ERROR_INPUT + 32);
            assert!(!e.to_string().chars().any(char::is_control));
        }
    }
});
