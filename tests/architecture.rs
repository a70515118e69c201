//! The stages' layering (ARCHITECTURE.md): a module's code, tests aside,
//! uses only the modules below it, in hisdf and in hisdf-geometry alike. A new `use crate::...` that climbs back
//! up fails here with the file and the line.

use std::path::Path;

/// Each module and the modules its non-test code may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("util", &[]),
    ("io", &["util"]),
    ("mesh", &["util"]),
    ("sdf", &["mesh", "util"]),
    ("sampling", &["io", "mesh", "sdf", "util"]),
    ("render", &["mesh", "util"]),
    ("model", &["mesh", "util"]),
    ("train", &["mesh", "model", "sampling", "util"]),
    ("extract", &["mesh", "model", "train", "util"]),
    (
        "metrics",
        &["extract", "mesh", "model", "sampling", "sdf", "util"],
    ),
    (
        "pipeline",
        &[
            "extract", "io", "mesh", "metrics", "model", "sampling", "sdf", "train", "util",
        ],
    ),
    (
        "ffi",
        &[
            "extract", "io", "mesh", "metrics", "model", "pipeline", "render", "sampling", "sdf",
            "train", "util",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module names after `crate::` on one line.
fn used_modules(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .map(|(i, _)| {
            line[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The sources of the two crates: hisdf and hisdf-geometry (the stages that
/// need no libtorch, which hisdf re-exports under the same names). A stage
/// may have files in both (`metrics`: the mesh-to-mesh metrics there, the
/// model's SDF error here); the same rule holds for all of them.
fn source_roots() -> [std::path::PathBuf; 2] {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [root.join("src"), root.join("crates/geometry/src")]
}

#[test]
fn every_stage_uses_only_the_stages_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut violations = Vec::new();
    let mut checked = 0;
    for (module, allowed) in ALLOWED {
        let mut files = Vec::new();
        for src in source_roots() {
            let single = src.join(format!("{module}.rs"));
            if single.is_file() {
                files.push(single);
            }
            let dir = src.join(module);
            if dir.is_dir() {
                rust_files(&dir, &mut files);
            }
        }
        assert!(!files.is_empty(), "no source for module {module}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Test modules sit at the end of a file, or are a file of their
            // own (`tests.rs`, declared under `#[cfg(test)]`), and may use
            // anything.
            let code = if file.file_name().is_some_and(|f| f == "tests.rs") {
                ""
            } else {
                text.split("#[cfg(test)]").next().unwrap()
            };
            for (n, line) in code.lines().enumerate() {
                let line = line.split("//").next().unwrap();
                for used in used_modules(line) {
                    checked += 1;
                    if used != *module && !allowed.contains(&used.as_str()) {
                        violations.push(format!(
                            "{}:{}: {module} uses {used}",
                            file.strip_prefix(root).unwrap().display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    // Every top-level module of either crate's lib.rs is in the table.
    for src in source_roots() {
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        for line in lib.lines() {
            if let Some(name) = line
                .strip_prefix("pub mod ")
                .and_then(|l| l.strip_suffix(';'))
            {
                assert!(
                    ALLOWED.iter().any(|(m, _)| *m == name),
                    "module {name} of {} is missing from the layering (ARCHITECTURE.md)",
                    src.display()
                );
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} uses found: is the scan broken?"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scan_reads_every_use_on_a_line() {
    assert_eq!(
        used_modules("use crate::mesh::{A}; let x = crate::train::f(crate::util::g());"),
        ["mesh", "train", "util"]
    );
}
