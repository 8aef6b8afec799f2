//! Piece map parsing: never panics; whatever parses is consistent (as many hashes as its size
//! and piece length make) and round-trips through its JSON form to the same map and the same
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_digest::PieceMap;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<PieceMap>(data) {
        assert_eq!(m.hashes().len() as u64, m.layout().count());
        assert!(m.layout().piece_length().is_power_of_two());
        let json = serde_json::to_vec(&m).expect("a parsed map serialises");
        let back: PieceMap = serde_json::from_slice(&json).expect("its own form parses");
        assert_eq!(serde_json::to_vec(&back).expect("serialises"), json);
        assert_eq!(back, m);
        for i in 0..m.count().min(4) {
            assert!(m.piece_digest(i).is_some());
        }
        assert!(m.piece_digest(m.count()).is_none());
    }
});
