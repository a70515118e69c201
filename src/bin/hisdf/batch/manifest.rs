//! The shapes of a batch: a folder of meshes or a list in text, CSV or
//! JSON, numbered in sorted path order.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Shape;
use crate::Result;

const MESH_EXTENSIONS: [&str; 4] = ["obj", "ply", "stl", "off"];

/// The shapes of a folder or list, sorted by path so that every machine
/// numbers them alike; ids are file stems, made unique with the index.
pub(super) fn read_manifest(path: &Path) -> Result<Vec<Shape>> {
    let mut paths: Vec<PathBuf> = if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut v = Vec::new();
        for entry in entries {
            let p = entry
                .map_err(|e| format!("{}: {e}", path.display()))?
                .path();
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| e.to_ascii_lowercase())
                .unwrap_or_default();
            if p.is_file() && MESH_EXTENSIONS.contains(&ext.as_str()) {
                v.push(p);
            }
        }
        v
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let listed = parse_list(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        listed.into_iter().map(|p| base.join(p)).collect()
    };
    paths.sort();
    let mut seen = HashSet::new();
    let shapes = paths
        .into_iter()
        .enumerate()
        .map(|(index, path)| {
            let stem: String = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut id = if stem.is_empty() {
                format!("shape-{index}")
            } else {
                stem
            };
            if !seen.insert(id.clone()) {
                id = format!("{id}-{index}");
                seen.insert(id.clone());
            }
            Shape { index, id, path }
        })
        .collect();
    Ok(shapes)
}

fn parse_list(path: &Path, text: &str) -> Result<Vec<String>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => {
            let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let items = v
                .as_array()
                .or_else(|| v.get("meshes").and_then(Value::as_array))
                .ok_or("expected a JSON array of paths (or {\"meshes\": [...]})")?;
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .or_else(|| item.get("path").and_then(Value::as_str))
                        .map(str::to_string)
                        .ok_or_else(|| format!("not a path: {item}"))
                })
                .collect()
        }
        Some("csv") => Ok(text
            .lines()
            .map(|l| {
                let first = l.split(',').next().unwrap_or("").trim();
                first.trim_matches('"').to_string()
            })
            .enumerate()
            .filter(|(i, f)| {
                let header =
                    *i == 0 && ["path", "mesh", "file"].contains(&f.to_lowercase().as_str());
                !(f.is_empty() || f.starts_with('#') || header)
            })
            .map(|(_, f)| f)
            .collect()),
        _ => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_in_every_format_give_the_same_paths() {
        let want = vec!["a.obj".to_string(), "sub/b c.stl".to_string()];
        let cases = [
            ("m.txt", "# meshes\na.obj\n\n  sub/b c.stl  \n"),
            ("m.csv", "path,label\na.obj,x\n\"sub/b c.stl\",y\n"),
            ("m.json", r#"["a.obj", {"path": "sub/b c.stl"}]"#),
            ("m.json", r#"{"meshes": ["a.obj", "sub/b c.stl"]}"#),
        ];
        for (name, text) in cases {
            assert_eq!(parse_list(Path::new(name), text).unwrap(), want, "{name}");
        }
        assert!(parse_list(Path::new("m.json"), "[1]").is_err());
    }
}
