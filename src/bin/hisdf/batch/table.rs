//! The results tables: `results.csv`/`results.json` of a run or a shard,
//! written atomically, and `hisdf batch-merge`, which joins the shards'.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hisdf::util::write_atomically;

use super::{metric, write_json, Record, Status, Table};
use crate::Result;

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The output folder the shards wrote to.
    pub(super) folder: PathBuf,
}

const METRIC_COLUMNS: [&str; 8] = [
    "chamfer",
    "emd",
    "chamfer_point_to_mesh",
    "hausdorff",
    "hausdorff_upper",
    "hausdorff_p99_ref_to_other",
    "normal_consistency",
    "f_score",
];

pub(super) fn write_tables(out: &Path, stem: &str, table: &Table) -> Result<()> {
    write_json(&out.join(format!("{stem}.json")), table)?;
    let mut csv = String::from("index,id,mesh,status");
    for m in METRIC_COLUMNS {
        csv.push(',');
        csv.push_str(m);
    }
    csv.push_str(
        ",input_open,vertices,triangles,iterations,final_loss,device,load_s,sample_s,train_s,extract_s,eval_s,total_s,resumed,error\n",
    );
    for r in &table.results {
        let status = match r.status {
            Status::Ok => "ok",
            Status::Failed => "failed",
        };
        let mut row = vec![
            r.index.to_string(),
            csv_field(&r.id),
            csv_field(&r.mesh),
            status.into(),
        ];
        for m in METRIC_COLUMNS {
            row.push(metric(r, m).map_or(String::new(), |v| format!("{v:.6e}")));
        }
        let s = &r.seconds;
        row.extend([
            r.input_open.map_or(String::new(), |o| o.to_string()),
            r.vertices.to_string(),
            r.triangles.to_string(),
            r.iterations.to_string(),
            r.final_loss.map_or(String::new(), |l| format!("{l:.6e}")),
            csv_field(&r.device),
            format!("{:.3}", s.load),
            format!("{:.3}", s.sample),
            format!("{:.3}", s.train),
            format!("{:.3}", s.extract),
            format!("{:.3}", s.eval),
            format!("{:.3}", s.total),
            r.resumed.to_string(),
            csv_field(r.error.as_deref().unwrap_or("")),
        ]);
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let path = out.join(format!("{stem}.csv"));
    write_atomically(&path, csv.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// RFC 4180 quoting: error messages hold commas and quotes.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Joins the shards' tables of `folder` into `results.csv` and
/// `results.json`, one row per shape, and names the shapes no shard has
/// reported yet.
pub fn merge(a: MergeArgs) -> Result<()> {
    let entries =
        std::fs::read_dir(&a.folder).map_err(|e| format!("{}: {e}", a.folder.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("results.shard-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{}: no results.shard-*.json to merge",
            a.folder.display()
        ));
    }
    let mut by_index: BTreeMap<usize, Record> = BTreeMap::new();
    let mut first: Option<(usize, String, String)> = None;
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let t: Table = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        match &first {
            None => first = Some((t.shapes_total, t.config_digest.clone(), t.manifest.clone())),
            Some((n, d, _)) if *n != t.shapes_total || *d != t.config_digest => {
                return Err(format!(
                    "{}: another batch ({} shapes, configuration {}) than {} ({n} shapes, configuration {d})",
                    f.display(),
                    t.shapes_total,
                    t.config_digest,
                    files[0].display()
                ));
            }
            Some(_) => {}
        }
        for r in t.results {
            // A shape reported twice (shard counts changed between runs)
            // keeps its successful record.
            let keep_old = by_index
                .get(&r.index)
                .is_some_and(|old| old.status == Status::Ok && r.status != Status::Ok);
            if !keep_old {
                by_index.insert(r.index, r);
            }
        }
    }
    let (total, digest, manifest) = first.unwrap_or_default();
    let missing: Vec<usize> = (0..total).filter(|i| !by_index.contains_key(i)).collect();
    let table = Table {
        manifest,
        shapes_total: total,
        shard: None,
        config_digest: digest,
        results: by_index.into_values().collect(),
    };
    let failed = table
        .results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .count();
    write_tables(&a.folder, "results", &table)?;
    // Named here because the merge's log may be all a cluster user reads.
    let failures: Vec<String> = table
        .results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| {
            format!(
                "{}: {}",
                r.id,
                r.error.as_deref().unwrap_or("unknown error")
            )
        })
        .collect();
    for f in failures.iter().take(10) {
        eprintln!("failed: {f}");
    }
    if failures.len() > 10 {
        eprintln!("failed: ... and {} more", failures.len() - 10);
    }
    println!(
        "merged {} tables: {} of {total} shapes, {} ok, {failed} failed, {} missing; wrote {}",
        files.len(),
        table.results.len(),
        table.results.len() - failed,
        missing.len(),
        a.folder.join("results.csv").display()
    );
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|i| i.to_string()).collect();
        return Err(format!(
            "{} shapes not reported by any shard (indices {})",
            missing.len(),
            list.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_and_quotes_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
    }
}
