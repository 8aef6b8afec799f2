//! Digest parsing: never panics; whatever parses is canonical, a safe path component, and
//! round-trips through Display and raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_digest::{Digest, Digester};

fuzz_target!(|data: &[u8]| {
    // Parsing arbitrary text.
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(d) = s.parse::<Digest>() {
            assert_eq!(d.as_str(), s);
            assert_eq!(d.encoded().len(), d.algorithm().hex_len());
            assert!(!d.encoded().contains(['/', '.', '\\']));
            assert_eq!(Digest::from_raw(d.algorithm(), &d.to_raw()).ok(), Some(d));
        }
    }
    // Restoring arbitrary bytes as a hash state never panics.
    if let Ok(mut dg) = Digester::restore(data) {
        dg.update(b"x");
        let _ = dg.finalize();
    }
});
