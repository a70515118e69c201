//! `hisdf batch`, `batch-merge` and configuration files, as a cluster job
//! would use them: one malformed mesh among many, a rerun after it, and
//! shards that split the list without talking to each other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use hisdf::mesh::{self, icosphere, torus, unit_cube};
use serde_json::Value;

/// The job-array variables `hisdf batch` reads; cleared, so that these tests
/// do every shape even when they run inside a Slurm job array.
const SLURM_ARRAY: [&str; 6] = [
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_STEP",
];

fn hisdf() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hisdf"));
    for v in SLURM_ARRAY {
        cmd.env_remove(v);
    }
    cmd
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hisdf-batch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs and returns (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("hisdf runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hisdf batch INPUT -o OUT --config CONFIG --keep-unconverged EXTRA...`,
/// with no CUDA_VISIBLE_DEVICES from the test's environment. 50 iterations
/// of the TINY network do not converge; the check's refusal is tested in
/// tests/cli.rs.
fn run_batch(input: &Path, out: &Path, config: &Path, extra: &[&str]) -> (i32, String, String) {
    run(hisdf()
        .arg("batch")
        .arg(input)
        .arg("-o")
        .arg(out)
        .arg("--config")
        .arg(config)
        .arg("--keep-unconverged")
        .args(extra)
        .env_remove("CUDA_VISIBLE_DEVICES"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Small enough that 19 shapes train, extract and evaluate in seconds on
/// two cores.
const TINY: &str = r#"{
    "preset": "fast",
    "sampling": {
        "surface": 300,
        "shells": [{"count": 600, "variance": 1e-3}, {"count": 600, "variance": 1e-4}],
        "uniform": 300
    },
    "network": {"width": 16, "depth": 2},
    "training": {"iterations": 50, "batch_size": 256, "device": "cpu", "progress_every": 25},
    "extraction": {"resolution": 24},
    "evaluation": {"chamfer_points": 500, "emd_points": 40}
}"#;

/// 19 meshes (spheres, tori, cubes in three formats) and one that is not a
/// mesh at all.
fn meshes(dir: &Path) {
    for i in 0..19 {
        let (m, ext) = match i % 3 {
            0 => (icosphere(1), "obj"),
            1 => (torus(0.6, 0.2 + 0.01 * i as f64, 12, 6), "ply"),
            _ => (unit_cube(), "stl"),
        };
        mesh::save(&m, &dir.join(format!("shape{i:02}.{ext}"))).unwrap();
    }
    std::fs::write(dir.join("broken.obj"), b"v 0 0 0\nf 1 2 oops\n").unwrap();
}

fn records(table: &Value) -> &Vec<Value> {
    table["results"].as_array().unwrap()
}

#[test]
fn batch_records_failures_resumes_and_shards() {
    let dir = scratch("main");
    let input = dir.join("meshes");
    std::fs::create_dir_all(&input).unwrap();
    meshes(&input);
    let config = dir.join("tiny.json");
    std::fs::write(&config, TINY).unwrap();
    let out = dir.join("out");

    let batch = |extra: &[&str]| run_batch(&input, &out, &config, extra);

    // First run: the malformed mesh fails, the other 19 finish.
    let (code, _, err) = batch(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1 of 20 shapes failed"), "{err}");
    // Not a terminal: one line per shape for the log, and no bars drawn.
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    assert_eq!(err.matches("] broken: FAILED").count(), 1, "{err}");
    let table = read_json(&out.join("results.json"));
    assert_eq!(table["shapes_total"], 20);
    let rs = records(&table);
    assert_eq!(rs.len(), 20);
    let ok: Vec<&Value> = rs.iter().filter(|r| r["status"] == "ok").collect();
    let failed: Vec<&Value> = rs.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!((ok.len(), failed.len()), (19, 1));
    assert_eq!(failed[0]["id"], "broken");
    let message = failed[0]["error"].as_str().unwrap();
    assert!(message.contains("broken.obj"), "{message}");
    for r in &ok {
        let cd = r["metrics"]["chamfer"].as_f64().unwrap();
        assert!(cd.is_finite() && cd > 0.0, "{r}");
        assert_eq!(r["iterations"], 50);
        assert!(r["triangles"].as_u64().unwrap() > 0, "{r}");
        // The network's held-out error and the convergence check (kept
        // although it failed) are recorded.
        assert!(
            r["metrics"]["sdf_error_near"].as_f64().unwrap() > 0.0,
            "{r}"
        );
        assert_eq!(r["metrics"]["components_reference"], 1, "{r}");
        // Every input here is closed; an open one is said (tests/cli.rs).
        assert_eq!(r["input_open"], false, "{r}");
        assert!(r["convergence"]["findings"].is_array(), "{r}");
        for key in ["output_mesh", "model"] {
            assert!(out.join(r[key].as_str().unwrap()).is_file(), "{r}");
        }
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 21);
    assert!(csv.lines().next().unwrap().contains("chamfer"));
    assert!(csv.lines().next().unwrap().contains(",input_open,"));
    assert!(csv
        .lines()
        .any(|l| l.contains("broken") && l.contains("failed")));
    let written = read_json(&out.join("batch.config.json"));
    assert_eq!(written["network"]["width"], 16);
    assert_eq!(written["extraction"]["resolution"], 24);

    // Second run: the 19 finished shapes are skipped untouched; the broken
    // one is tried again and fails again.
    let model = out.join(ok[0]["model"].as_str().unwrap());
    let before = std::fs::metadata(&model).unwrap().modified().unwrap();
    let (code, _, err) = batch(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("(19 finished before)"), "{err}");
    let again = read_json(&out.join("results.json"));
    let resumed = records(&again)
        .iter()
        .filter(|r| r["resumed"] == true && r["status"] == "ok")
        .count();
    assert_eq!(resumed, 19);
    assert_eq!(
        std::fs::metadata(&model).unwrap().modified().unwrap(),
        before
    );

    // Shards 0/2 and 1/2 split the 20 shapes exactly, and batch-merge joins
    // them. They read the configuration the first run wrote: the same
    // settings, so every good shape counts as finished.
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for (k, finished) in [
        (0, "9 ok (9 finished before)"),
        (1, "10 ok (10 finished before)"),
    ] {
        let (_, _, err) = run_batch(
            &input,
            &out,
            &out.join("batch.config.json"),
            &["--shard", &format!("{k}/2")],
        );
        assert!(err.contains(finished), "{err}");
        let own = read_json(&out.join(format!("batch.shard-{k}-of-2.config.json")));
        assert_eq!(own["training"], written["training"]);
        let t = read_json(&out.join(format!("results.shard-{k}-of-2.json")));
        for r in records(&t) {
            let index = r["index"].as_u64().unwrap();
            assert_eq!(index % 2, k, "{err}");
            seen.insert(index);
            total += 1;
        }
    }
    assert_eq!(total, 20);
    assert_eq!(seen, (0..20).collect());
    std::fs::remove_file(out.join("results.json")).unwrap();
    let (code, stdout, err) = run(hisdf().arg("batch-merge").arg(&out));
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("20 of 20 shapes, 19 ok, 1 failed, 0 missing"),
        "{stdout}"
    );
    assert_eq!(records(&read_json(&out.join("results.json"))).len(), 20);

    // Another configuration is not "finished": the digest differs. (Index 0
    // is the broken mesh, so shard 1/7 holds three good ones.)
    let (code, _, err) = batch(&["--resolution", "20", "--shard", "1/7"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 ok (0 finished before)"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn configuration_round_trips_through_train() {
    let dir = scratch("config");
    let sphere = dir.join("sphere.obj");
    mesh::save(&icosphere(1), &sphere).unwrap();
    let config = dir.join("tiny.json");
    std::fs::write(&config, TINY).unwrap();

    // Command-line options override the file and reach the written copy.
    let first = dir.join("first.safetensors");
    let (code, _, err) = run(hisdf()
        .arg("train")
        .arg(&sphere)
        .arg("-o")
        .arg(&first)
        .arg("--config")
        .arg(&config)
        .args(["--iterations", "20", "--seed", "3", "--keep-unconverged"]));
    assert_eq!(code, 0, "{err}");
    let written = read_json(&dir.join("first.config.json"));
    assert_eq!(written["training"]["iterations"], 20);
    assert_eq!(written["training"]["seed"], 3);
    assert_eq!(written["network"]["depth"], 2);
    assert_eq!(written["sampling"]["surface"], 300);
    assert_eq!(written["hisdf"]["command"], "train");

    // Reading the written file back, over another preset, repeats the run.
    let second = dir.join("second.safetensors");
    let (code, _, err) = run(hisdf()
        .arg("train")
        .arg(&sphere)
        .arg("-o")
        .arg(&second)
        .arg("--config")
        .arg(dir.join("first.config.json"))
        .args(["--preset", "paper-curriculum", "--keep-unconverged"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(read_json(&dir.join("second.config.json")), written);

    // A misspelt setting is refused in one line, before any work.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"network": {"widht": 16}}"#).unwrap();
    let (code, _, err) = run(hisdf()
        .arg("train")
        .arg(&sphere)
        .arg("-o")
        .arg(dir.join("never.safetensors"))
        .arg("--config")
        .arg(&bad));
    assert_eq!(code, 1);
    assert!(err.trim().starts_with("hisdf: error:"), "{err}");
    assert!(err.contains("network.widht"), "{err}");
    assert!(!dir.join("never.safetensors").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn list_manifests_and_bad_shards_are_handled() {
    let dir = scratch("list");
    let (code, _, err) = run(hisdf()
        .args(["batch", "/no/such/list.txt", "-o"])
        .arg(dir.join("out")));
    assert_eq!(code, 1);
    assert!(err.contains("/no/such/list.txt"), "{err}");
    let (code, _, _) = run(hisdf()
        .args(["batch", "x.txt", "--shard", "2/2", "-o"])
        .arg(dir.join("out")));
    assert_eq!(code, 2, "usage error");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn slurm_array_tasks_take_their_shard_from_the_environment() {
    let dir = scratch("slurm");
    let input = dir.join("meshes");
    std::fs::create_dir_all(&input).unwrap();
    meshes(&input);
    let out = dir.join("out");
    // `--dry-run` reads the list and the shard and writes nothing.
    let dry = |env: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = hisdf();
        cmd.arg("batch")
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .arg("--dry-run")
            .args(extra)
            .envs(env.iter().copied());
        run(&mut cmd)
    };
    // Task 3 of `sbatch --array=1-4`: shard 2/4, indices 2, 6, 10, 14, 18.
    let task = [
        ("SLURM_ARRAY_JOB_ID", "41"),
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "4"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("SLURM_ARRAY_TASK_STEP", "1"),
    ];
    let (code, stdout, err) = dry(&task, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("shard 2/4 from Slurm job array 41 (task 3 of 1-4)"),
        "{err}"
    );
    assert!(
        stdout.starts_with("dry run: 5 of 20 shapes of shard 2/4, 0 of them finished"),
        "{stdout}"
    );
    assert!(!out.exists(), "a dry run wrote {}", out.display());
    // An explicit shard wins over the array's.
    let (code, stdout, err) = dry(&task, &["--shard", "0/2"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("10 of 20 shapes of shard 0/2"), "{stdout}");
    assert!(err.contains("from --shard"), "{err}");
    // A stepped array (--array=0-6:2, task 4) is refused before any work.
    let mut stepped = task;
    stepped[1].1 = "4";
    stepped[2].1 = "0";
    stepped[3].1 = "6";
    stepped[5].1 = "2";
    let (code, _, err) = dry(&stepped, &[]);
    assert_eq!(code, 1);
    assert!(err.trim().starts_with("hisdf: error:"), "{err}");
    assert!(err.contains("step of 2"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--pack 4` trains the shapes four at a time in one batched step: every
/// shape gets the record it gets trained alone (`--pack 1`), a failing
/// shape stays its own, and a run with a pack resumes one made without.
#[test]
fn packed_shapes_train_as_they_train_alone() {
    let dir = scratch("pack");
    let input = dir.join("meshes");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..6 {
        let m = if i % 2 == 0 {
            icosphere(1)
        } else {
            torus(0.6, 0.2 + 0.02 * i as f64, 12, 6)
        };
        mesh::save(&m, &input.join(format!("shape{i}.obj"))).unwrap();
    }
    std::fs::write(input.join("broken.obj"), b"v 0 0 0\nf 1 2 oops\n").unwrap();
    let config = dir.join("tiny.json");
    std::fs::write(&config, TINY).unwrap();
    let batch = |out: &Path, extra: &[&str]| run_batch(&input, out, &config, extra);
    let (alone, packed) = (dir.join("alone"), dir.join("packed"));
    let (code, _, err) = batch(&alone, &["--pack", "1"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = batch(&packed, &["--pack", "4"]);
    assert_eq!(code, 1, "{err}");
    // The broken mesh is one of the 7 until loading it fails.
    assert!(err.contains("7 shapes to train, 4 at a time"), "{err}");
    let a = read_json(&alone.join("results.json"));
    let p = read_json(&packed.join("results.json"));
    assert_eq!(records(&a).len(), 7);
    assert_eq!(records(&p).len(), 7);
    for (ra, rp) in records(&a).iter().zip(records(&p)) {
        assert_eq!(ra["id"], rp["id"]);
        assert_eq!(ra["status"], rp["status"], "{rp}");
        if ra["status"] != "ok" {
            assert_eq!(rp["id"], "broken");
            continue;
        }
        assert_eq!(rp["iterations"], 50);
        let (la, lp) = (
            ra["final_loss"].as_f64().unwrap(),
            rp["final_loss"].as_f64().unwrap(),
        );
        assert!(
            (la - lp).abs() <= 0.05 * la,
            "{}: loss {la} alone, {lp} packed",
            ra["id"]
        );
    }
    // The pack size is not a setting of the results: a packed run resumes
    // the shapes an unpacked one finished.
    let (_, _, err) = batch(&alone, &["--pack", "3"]);
    assert!(err.contains("(6 finished before)"), "{err}");
    let (code, _, err) = batch(&packed, &["--pack", "zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--pack"), "{err}");
}

/// `--gpus 2` runs two workers of the same command, each with its own
/// CUDA_VISIBLE_DEVICES and shard, and merges their tables; on the CPU the
/// workers train on the CPU. Under a shard of its own (a job array task) a
/// run splits that shard and leaves the merge to `batch-merge`.
#[test]
fn workers_split_the_shapes_and_the_tables_are_merged() {
    let dir = scratch("workers");
    let input = dir.join("meshes");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..6 {
        mesh::save(&icosphere(1), &input.join(format!("shape{i}.obj"))).unwrap();
    }
    std::fs::write(input.join("broken.obj"), b"v 0 0 0\nf 1 2 oops\n").unwrap();
    let config = dir.join("tiny.json");
    std::fs::write(&config, TINY).unwrap();
    let batch = |out: &Path, extra: &[&str]| run_batch(&input, out, &config, extra);
    let out = dir.join("two");
    let (code, said, err) = batch(&out, &["--gpus", "2"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("2 workers, one per GPU (CUDA_VISIBLE_DEVICES 0, 1)"),
        "{err}"
    );
    for k in 0..2 {
        let t = read_json(&out.join(format!("results.shard-{k}-of-2.json")));
        assert!(!records(&t).is_empty(), "{err}");
        for r in records(&t) {
            assert_eq!(r["index"].as_u64().unwrap() % 2, k);
        }
    }
    let merged = read_json(&out.join("results.json"));
    assert_eq!(records(&merged).len(), 7, "{err}");
    let ok = records(&merged)
        .iter()
        .filter(|r| r["status"] == "ok")
        .count();
    assert_eq!(ok, 6, "{err}");
    assert!(
        said.contains("7 of 7 shapes, 6 ok, 1 failed, 0 missing"),
        "{said}"
    );

    // Task 1 of a two-task array with two GPUs: shards 1/4 and 3/4.
    let out = dir.join("task");
    let (code, _, err) = batch(&out, &["--gpus", "2", "--shard", "1/2"]);
    assert_eq!(code, 0, "{err}");
    for k in [1, 3] {
        let t = read_json(&out.join(format!("results.shard-{k}-of-4.json")));
        for r in records(&t) {
            assert_eq!(r["index"].as_u64().unwrap() % 4, k);
        }
    }
    assert!(!out.join("results.json").exists());
}
