//! The committed C header must be exactly what cbindgen generates from
//! src/ffi today: a hand-edited or stale header drifts from the ABI.

#[test]
fn committed_header_matches_a_fresh_cbindgen_run() {
    let fresh_path = concat!(env!("OUT_DIR"), "/hisdf.h");
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/hisdf.h");
    let fresh = std::fs::read_to_string(fresh_path)
        .unwrap_or_else(|e| panic!("build.rs did not generate {fresh_path}: {e}"));
    let committed = std::fs::read_to_string(committed_path)
        .unwrap_or_else(|e| panic!("cannot read {committed_path}: {e}"));
    assert!(
        fresh == committed,
        "include/hisdf.h differs from a fresh cbindgen run; rebuild outside CI \
         (or with HISDF_UPDATE_HEADER=1) and commit the result"
    );
    for symbol in [
        "hisdf_version",
        "hisdf_train",
        "hisdf_extract",
        "HISDF_STATUS_PANIC",
    ] {
        assert!(fresh.contains(symbol), "{symbol} missing from the header");
    }
}
