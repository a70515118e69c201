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

/// Every function of the C API is reachable from the C++ wrapper, so a
/// C++ host can do whatever a C host can. The exceptions say why.
#[test]
fn the_cpp_wrapper_reaches_every_function() {
    // The wrapper turns a status into an exception from the call's own
    // return value, and returns every metric at once as a map.
    const NOT_WRAPPED: [&str; 2] = ["hisdf_error_status", "hisdf_metrics_get"];
    let header = include_str!("../include/hisdf.h");
    let wrapper = include_str!("../bindings/cpp/hisdf.hpp");
    // Every `hisdf_name(` in the header: the declarations (and names in
    // comments, which are functions too).
    let mut functions: Vec<&str> = header
        .match_indices("hisdf_")
        .filter_map(|(i, _)| {
            let rest = &header[i..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            rest[end..].starts_with('(').then(|| &rest[..end])
        })
        .collect();
    functions.sort_unstable();
    functions.dedup();
    assert!(functions.len() > 40, "found only {functions:?}");
    let missing: Vec<_> = functions
        .iter()
        // Called, or named as an owner's deleter (`Owned<T, hisdf_x_free>`).
        .filter(|f| {
            !NOT_WRAPPED.contains(f)
                && !wrapper.contains(&format!("{f}("))
                && !wrapper.contains(&format!("{f}>"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "bindings/cpp/hisdf.hpp never calls {missing:?}"
    );
}
