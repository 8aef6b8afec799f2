//! The `WWW-Authenticate` challenge parser of the registry client never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_distribution_client::Challenge;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Challenge::parse(s);
    }
});
