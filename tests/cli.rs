//! The command-line tool as a script would use it: exit codes, one-line
//! errors, outputs that are complete or absent.

use std::path::PathBuf;
use std::process::Command;

fn hisdf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hisdf"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hisdf-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mesh_path(name: &str) -> String {
    format!("{}/data/meshes/{name}", env!("CARGO_MANIFEST_DIR"))
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

fn assert_one_line_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got {stderr:?}");
    assert!(lines[0].starts_with("hisdf: error:"), "{stderr:?}");
    assert!(lines[0].contains(needle), "{stderr:?} lacks {needle:?}");
}

#[test]
fn missing_mesh_is_refused_clearly() {
    let dir = scratch("missing");
    let model = dir.join("m.safetensors");
    let (code, _, err) = run(hisdf()
        .args(["train", "/no/such/mesh.stl", "-o"])
        .arg(&model));
    assert_eq!(code, 1);
    assert_one_line_error(&err, "/no/such/mesh.stl");
    assert!(!model.exists());
}

#[test]
fn malformed_meshes_are_refused_clearly() {
    let dir = scratch("malformed");
    let cases: [(&str, &[u8], &str); 4] = [
        ("empty.stl", b"", "empty"),
        (
            "garbage.stl",
            b"\x00\x01garbage that is no STL at all",
            "STL",
        ),
        (
            "bad.obj",
            b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n",
            "bad.obj",
        ),
        (
            "nan.obj",
            b"v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
            "nan.obj",
        ),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = dir.join("out.obj");
        let (code, _, err) = run(hisdf().arg("run").arg(&path).arg("-o").arg(&out));
        assert_eq!(code, 1, "{name}: {err}");
        assert_one_line_error(&err, needle);
        assert!(!out.exists(), "{name}: output written despite the error");
    }
}

#[test]
fn unknown_output_extension_and_bad_model_are_refused() {
    let dir = scratch("outputs");
    let (code, _, err) = run(hisdf()
        .arg("run")
        .arg(mesh_path("block-2x4.stl"))
        .arg("-o")
        .arg(dir.join("out.xyz")));
    assert_eq!(code, 1);
    assert_one_line_error(&err, "extension");

    let not_a_model = dir.join("fake.safetensors");
    std::fs::write(&not_a_model, b"this is not a model").unwrap();
    let (code, _, err) = run(hisdf()
        .arg("extract")
        .arg(&not_a_model)
        .arg("-o")
        .arg(dir.join("x.obj")));
    assert_eq!(code, 1);
    assert_one_line_error(&err, "not a hisdf model");
}

/// `-o` into folders that do not exist yet makes them (as `mkdir -p`); a
/// path through a file is refused before any work, and the file is kept.
#[test]
fn missing_output_folders_are_made_and_files_in_the_way_refused() {
    let dir = scratch("folders");
    let nested = dir.join("new").join("deeper").join("samples.npy");
    let (code, _, err) = run(hisdf()
        .arg("sample")
        .arg(mesh_path("block-2x4.stl"))
        .arg("-o")
        .arg(&nested));
    assert_eq!(code, 0, "{err}");
    assert!(nested.is_file(), "{err}");

    let file = dir.join("notes.txt");
    std::fs::write(&file, b"the user's notes").unwrap();
    let (code, _, err) = run(hisdf()
        .arg("sample")
        .arg(mesh_path("block-2x4.stl"))
        .arg("-o")
        .arg(file.join("samples.npy")));
    assert_eq!(code, 1);
    assert_one_line_error(&err, "is not a folder");
    assert_eq!(std::fs::read(&file).unwrap(), b"the user's notes");

    // An output that is a folder is named as one, with what to give instead.
    let (code, _, err) = run(hisdf()
        .arg("sample")
        .arg(mesh_path("block-2x4.stl"))
        .arg("-o")
        .arg(&dir));
    assert_eq!(code, 1);
    assert_one_line_error(&err, "is a folder; give a file name in it");
}

/// An extraction that cannot run is refused before the training it would
/// follow, with the library's limits (2048 sparse, 1024 dense).
#[test]
fn impossible_extractions_are_refused_before_training() {
    let dir = scratch("extraction-limits");
    for (args, needle) in [
        (&["--resolution", "4"][..], "between 8 and 1024"),
        (&["--resolution", "2048"][..], "between 8 and 1024"),
        (
            &["--resolution", "4096", "--sparse"][..],
            "between 8 and 2048",
        ),
    ] {
        let (code, out, err) = run(hisdf()
            .arg("run")
            .arg(mesh_path("block-2x4.stl"))
            .arg("-o")
            .arg(dir.join("brick.obj"))
            .args(args));
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert_one_line_error(&err, needle);
        assert!(
            !err.contains("convergence check"),
            "{args:?} trained first: {err}"
        );
        assert!(!dir.join("brick.obj").exists());
    }
}

#[test]
fn usage_errors_exit_with_two() {
    let (code, _, _) = run(hisdf().args(["train"]));
    assert_eq!(code, 2);
    let (code, _, _) =
        run(hisdf().args(["train", "x.stl", "-o", "m.safetensors", "--device", "tpu"]));
    assert_eq!(code, 2);
}

#[test]
fn eval_of_a_mesh_with_itself_is_the_sampling_floor() {
    let path = mesh_path("Fennec_Fox.stl");
    let (code, out, err) = run(hisdf().args(["eval", &path, &path, "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let cd = v["chamfer"].as_f64().unwrap();
    // Two independent 10,000-point samplings of the fox score ~1.35e-4
    // (measured with an independent PyTorch implementation): positive, small.
    assert!(cd > 0.5e-4 && cd < 3e-4, "{cd}");
}

#[test]
fn train_extract_eval_round_trip_on_cpu() {
    let dir = scratch("roundtrip");
    let model = dir.join("torus.safetensors");
    let mesh = dir.join("torus.obj");
    let source = dir.join("source.obj");
    hisdf::mesh::write_obj(&hisdf::mesh::primitives::torus(1.0, 0.4, 64, 32), &source).unwrap();
    let (code, _, err) = run(hisdf()
        .arg("train")
        .arg(&source)
        .arg("-o")
        .arg(&model)
        .args([
            "--iterations",
            "400",
            "--width",
            "64",
            "--depth",
            "3",
            "--device",
            "cpu",
        ]));
    assert_eq!(code, 0, "{err}");
    // stderr is a pipe here, not a terminal: the log gets lines, and no
    // progress bar is drawn into it.
    let drawn = |err: &str| err.contains('\r') || err.contains('\x1b');
    assert!(!drawn(&err), "{err:?}");
    assert!(err.contains("convergence check: passed"), "{err}");
    let (code, _, err) = run(hisdf()
        .arg("extract")
        .arg(&model)
        .arg("-o")
        .arg(&mesh)
        .args(["--resolution", "48", "--device", "cpu"]));
    assert_eq!(code, 0, "{err}");
    assert!(!drawn(&err), "{err:?}");
    let (code, out, err) = run(hisdf().arg("eval").arg(&source).arg(&mesh).arg("--json"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let cd = v["chamfer"].as_f64().unwrap();
    // A torus is a smooth, easy shape: even 400 iterations of a 3x64 network
    // at 48^3 get the surface to within ~1% of its size (CD ~1e-4 floor plus
    // the grid's resolution). 2e-3 would mean a visibly wrong shape.
    assert!(cd < 2e-3, "torus CD {cd}");
    assert_eq!(v["components_reference"], 1);
    assert_eq!(v["components_other"], 1);

    // With the model: its own SDF error on held-out samples.
    let (code, out, err) = run(hisdf()
        .arg("eval")
        .arg(&source)
        .arg(&mesh)
        .arg("--json")
        .arg("--model")
        .arg(&model)
        .args(["--device", "cpu"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let near = v["sdf_error_near"].as_f64().unwrap();
    assert!(near > 0.0 && near < 0.02, "{v}");
    assert!(v["wrong_sign_far"].as_f64().unwrap() < 0.03, "{v}");
    assert_eq!(v["sdf_samples_near"], 20000);
}

#[test]
fn training_options_and_query_round_trip() {
    let dir = scratch("query");
    let source = dir.join("torus.obj");
    hisdf::mesh::write_obj(&hisdf::mesh::primitives::torus(1.0, 0.4, 48, 24), &source).unwrap();
    let model = dir.join("m.safetensors");
    let (code, _, err) = run(hisdf()
        .arg("train")
        .arg(&source)
        .arg("-o")
        .arg(&model)
        .args([
            "--iterations",
            "60",
            "--width",
            "16",
            "--depth",
            "3",
            "--device",
            "cpu",
            "--keep-unconverged",
        ])
        .args([
            "--loss",
            "curriculum",
            "--clamp",
            "none",
            "--schedule",
            "none",
        ])
        .args([
            "--weight-norm",
            "--skip",
            "2",
            "--dropout",
            "0.1",
            "--activation",
            "softplus",
            "--encoding",
            "fourier:2",
        ]));
    assert_eq!(code, 0, "{err}");
    // The options reached the model file.
    let loaded = hisdf::model::load_model(&model, tch::Device::Cpu).unwrap();
    let c = &loaded.network.config;
    assert!(
        c.weight_norm && c.skip == Some(2) && c.dropout == 0.1,
        "{c:?}"
    );
    assert_eq!(
        c.encoding,
        hisdf::model::Encoding::Fourier { frequencies: 2 }
    );

    let points = dir.join("p.npy");
    let pts: Vec<f64> = vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 3.0];
    hisdf::io::npy::write(&points, &[3, 3], &pts).unwrap();
    let (values, grads) = (dir.join("v.npy"), dir.join("g.npy"));
    let (code, _, err) = run(hisdf()
        .arg("query")
        .arg(&model)
        .arg(&points)
        .arg("-o")
        .arg(&values)
        .arg("--gradients")
        .arg(&grads)
        .args(["--device", "cpu"]));
    assert_eq!(code, 0, "{err}");
    let array = hisdf::io::npy::read(&values).unwrap();
    assert_eq!(array.shape, vec![3]);
    let v = array.data;
    let direct = loaded.query(&[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0]]);
    for (a, b) in v.iter().zip(&direct) {
        assert_eq!(*a as f32, *b);
    }
    let (g, n) = hisdf::io::npy::read_rows(&grads, 3, "gradients").unwrap();
    assert_eq!(n, 3);
    assert!(g.iter().all(|x| x.is_finite()));

    let (code, _, err) = run(hisdf()
        .arg("train")
        .arg(&source)
        .arg("-o")
        .arg(dir.join("bad.safetensors"))
        .args(["--loss", "l2"]));
    assert_eq!(code, 1);
    assert_one_line_error(&err, "--loss");
    for (flag, value, needle) in [
        ("--encoding", "fourier:0", "frequencies"),
        ("--encoding", "gauss", "--encoding"),
        ("--activation", "sine:0", "omega0"),
        ("--activation", "gelu", "--activation"),
    ] {
        let (code, _, err) = run(hisdf()
            .arg("train")
            .arg(&source)
            .arg("-o")
            .arg(dir.join("bad.safetensors"))
            .args([flag, value]));
        assert_eq!(code, 1, "{flag} {value}");
        assert_one_line_error(&err, needle);
    }
}

#[test]
fn weighted_sampling_trains_and_is_recorded_in_the_config() {
    let dir = scratch("weighted");
    let source = dir.join("sphere.obj");
    hisdf::mesh::write_obj(&hisdf::mesh::primitives::icosphere(2), &source).unwrap();
    let config = dir.join("small-weighted.json");
    // A small pool so the test stays fast; the flag chooses the strategy.
    std::fs::write(
        &config,
        r#"{"preset": "fast", "sampling": {"weighted": {"pool": 200000, "keep": 20000, "beta": 100.0}}}"#,
    )
    .unwrap();
    let model = dir.join("m.safetensors");
    let (code, _, err) = run(hisdf()
        .arg("train")
        .arg(&source)
        .arg("-o")
        .arg(&model)
        .arg("--config")
        .arg(&config)
        .args([
            "--iterations",
            "30",
            "--width",
            "16",
            "--depth",
            "2",
            "--device",
            "cpu",
            "--keep-unconverged",
        ]));
    assert_eq!(code, 0, "{err}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m.config.json")).unwrap()).unwrap();
    assert_eq!(written["sampling"]["weighted"]["keep"], 20000, "{written}");

    // --sampling near-surface switches it off again; a bad name is refused.
    // Five iterations leave the geometric initialisation's sphere of radius
    // 0.5 inside the unit sphere: the convergence check refuses the model
    // and writes nothing, unless asked to keep it.
    let train_five = |keep: bool| {
        let mut cmd = hisdf();
        cmd.arg("train")
            .arg(&source)
            .arg("-o")
            .arg(dir.join("n.safetensors"))
            .arg("--config")
            .arg(&config)
            .args([
                "--sampling",
                "near-surface",
                "--iterations",
                "5",
                "--width",
                "8",
                "--depth",
                "2",
                "--device",
                "cpu",
            ]);
        if keep {
            cmd.arg("--keep-unconverged");
        }
        run(&mut cmd)
    };
    let (code, _, err) = train_five(false);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("hisdf: error: training did not converge: "),
        "{err}"
    );
    assert!(err.contains("convergence check: FAILED"), "{err}");
    assert!(!dir.join("n.safetensors").exists());
    let (code, _, err) = train_five(true);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("kept as --keep-unconverged asks"), "{err}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("n.config.json")).unwrap()).unwrap();
    assert!(written["sampling"]["weighted"].is_null(), "{written}");
    let (code, _, err) = run(hisdf()
        .arg("train")
        .arg(&source)
        .arg("-o")
        .arg(dir.join("x.safetensors"))
        .args(["--sampling", "random"]));
    assert_eq!(code, 1);
    assert_one_line_error(&err, "--sampling");
}

/// `hisdf sdf` is right across the whole range of finite coordinates: a
/// tetrahedron at scales 1e-30 and 1e30, and one with a stray unreferenced
/// vertex at 1e30 (which once shrank the shape to a point: every answer inf).
#[test]
fn exact_sdf_holds_from_1e_minus_30_to_1e30_and_ignores_stray_vertices() {
    use hisdf::io::npy;
    let dir = scratch("scales");
    for (name, scale, stray) in [
        ("small", 1e-30f64, false),
        ("big", 1e30, false),
        ("stray", 1.0, true),
    ] {
        let corners = [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
        ];
        let mut obj: String = corners
            .iter()
            .map(|c| {
                format!(
                    "v {:e} {:e} {:e}\n",
                    c[0] * scale,
                    c[1] * scale,
                    c[2] * scale
                )
            })
            .collect();
        if stray {
            obj.push_str("v 1e30 1e30 1e30\n");
        }
        obj.push_str("f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n");
        let mesh = dir.join(format!("{name}.obj"));
        std::fs::write(&mesh, obj).unwrap();
        // Two points inside (0.1 and 0.2 from the three axis faces), one
        // outside beyond the slanted face.
        let unit = [0.1f64, 0.1, 0.1, 0.2, 0.2, 0.2, 2.0, 2.0, 2.0];
        let points: Vec<f32> = unit.iter().map(|v| (v * scale) as f32).collect();
        let pts = dir.join(format!("{name}_points.npy"));
        npy::write(&pts, &[3, 3], &points).unwrap();
        let out = dir.join(format!("{name}_sdf.npy"));
        let (code, _, err) = run(hisdf().arg("sdf").arg(&mesh).arg(&pts).arg("-o").arg(&out));
        assert_eq!(code, 0, "{name}: {err}");
        let values = npy::read(&out).unwrap().data;
        // The slanted face x + y + z = 1 is (6 - 1) / sqrt(3) from (2, 2, 2).
        let want = [-0.1, -0.2, 5.0 / 3f64.sqrt()].map(|v| v * scale);
        for (got, want) in values.iter().zip(want) {
            assert!(
                ((got - want) / want).abs() < 1e-5,
                "{name}: {values:?} against {want:?}"
            );
        }
    }
}

/// An open mesh is said out loud: its holes will be closed over.
#[test]
fn an_open_mesh_is_reported_as_open() {
    use hisdf::io::npy;
    let dir = scratch("open");
    let mut open = hisdf::mesh::primitives::unit_cube();
    open.triangles.pop();
    let mesh = dir.join("open.obj");
    hisdf::mesh::write_obj(&open, &mesh).unwrap();
    let pts = dir.join("p.npy");
    npy::write(&pts, &[1, 3], &[0.0f32, 0.0, 0.0]).unwrap();
    let (code, _, err) = run(hisdf()
        .arg("sdf")
        .arg(&mesh)
        .arg(&pts)
        .arg("-o")
        .arg(dir.join("d.npy")));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("3 boundary edges: the mesh is open") && err.contains("closed over"),
        "{err}"
    );
    let (code, out, _) = run(hisdf().arg("info").arg(&mesh));
    assert_eq!(code, 0);
    assert!(out.contains("the mesh is open"), "{out}");
}

/// `--set KEY=VALUE` takes every setting by the C API's name, checked by
/// the library; the loss and scheduler options take the C API's values and
/// names too (`clamped-l1`, `--scheduler`), the old ones still work, and
/// `hisdf keys` lists what `--set` takes.
#[test]
fn named_settings_reach_the_model_and_bad_ones_are_refused() {
    let dir = scratch("set");
    let source = dir.join("cube.obj");
    hisdf::mesh::write_obj(&hisdf::mesh::primitives::unit_cube(), &source).unwrap();
    let model = dir.join("m.safetensors");
    let train = |extra: &[&str]| {
        run(hisdf()
            .arg("train")
            .arg(&source)
            .arg("-o")
            .arg(&model)
            .args([
                "--device",
                "cpu",
                "--keep-unconverged",
                "--iterations",
                "20",
            ])
            .args(extra))
    };
    let (code, _, err) = train(&[
        "--set",
        "width=12",
        "--set",
        "depth=2",
        "--set",
        "shells=2000:1e-3",
        "--set",
        "surface_samples=500",
        "--set",
        "uniform_samples=500",
        "--loss",
        "clamped-l1",
        "--scheduler",
        "cosine",
    ]);
    assert_eq!(code, 0, "{err}");
    let loaded = hisdf::model::load_model(&model, tch::Device::Cpu).unwrap();
    assert_eq!(
        (loaded.network.config.width, loaded.network.config.depth),
        (12, 2)
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m.config.json")).unwrap()).unwrap();
    assert_eq!(written["sampling"]["shells"][0]["count"], 2000, "{written}");
    assert_eq!(
        written["training"]["loss"]["kind"], "clamped-l1",
        "{written}"
    );
    assert_eq!(
        written["training"]["scheduler"]["kind"], "cosine",
        "{written}"
    );
    // The old spellings are the same options.
    let (code, _, err) = train(&["--set", "width=8", "--loss", "l1", "--schedule", "none"]);
    assert_eq!(code, 0, "{err}");
    for (pair, says) in [
        ("widht=3", "unknown configuration key"),
        ("width", "expected KEY=VALUE"),
        ("width=0", "width"),
        ("check_convergence=false", "--keep-unconverged"),
    ] {
        let (code, _, err) = train(&["--set", pair]);
        assert_eq!(code, 1, "{pair}: {err}");
        assert!(err.contains(says), "{pair}: {err}");
    }
    let (code, keys, _) = run(hisdf().arg("keys"));
    assert_eq!(code, 0);
    assert!(keys.lines().any(|l| l == "shells"), "{keys}");
    assert!(keys.contains("presets: fast, detail"), "{keys}");
}

/// `hisdf keys` gives each key's type, default and range under its name,
/// and `--json` the library's table as the C API hands it out.
#[test]
fn keys_are_listed_with_type_default_and_range() {
    let (code, keys, _) = run(hisdf().arg("keys"));
    assert_eq!(code, 0);
    let lines: Vec<&str> = keys.lines().collect();
    let width = lines
        .iter()
        .position(|l| *l == "width")
        .expect("width listed");
    assert!(
        lines[width + 1].contains("integer: 1 to 8192; default (fast) 128"),
        "{keys}"
    );
    let (code, json, _) = run(hisdf().args(["keys", "--json"]));
    assert_eq!(code, 0);
    assert!(
        json.starts_with('[') && json.contains("\"key\":\"shells\""),
        "{json}"
    );
}

/// A model file whose numbers are not finite in single precision (a NaN or
/// infinite weight, a centre of 1e308) is refused by `query` and `extract`
/// at load, with the number named and what to do; the same file undamaged
/// answers.
#[test]
fn models_not_finite_in_single_precision_are_refused_at_load() {
    use hisdf::io::npy;
    use hisdf::mesh::Normalisation;
    use hisdf::model::{
        save_model, Initialisation, NetworkConfig, SdfNetwork, TrainedModel, TrainingMetadata,
    };
    let dir = scratch("finite-models");
    let points = dir.join("points.npy");
    npy::write(&points, &[2, 3], &[0.0f32, 0.0, 0.0, 1.0, 2.0, 3.0]).unwrap();
    // A sphere of radius 0.5 in a frame centred at (1, 2, 3), scale 0.5.
    let model = || TrainedModel {
        network: SdfNetwork::new(
            &NetworkConfig {
                depth: 2,
                width: 16,
                initialisation: Initialisation::Geometric { radius: 0.5 },
                ..NetworkConfig::default()
            },
            tch::Device::Cpu,
            1,
        )
        .unwrap(),
        normalisation: Normalisation {
            centre: [1.0, 2.0, 3.0],
            scale: 0.5,
        },
        metadata: TrainingMetadata::default(),
    };
    let good = dir.join("good.safetensors");
    save_model(&model(), &good).unwrap();
    let out = dir.join("sdf.npy");
    let (code, _, err) = run(hisdf()
        .arg("query")
        .arg(&good)
        .arg(&points)
        .arg("-o")
        .arg(&out));
    assert_eq!(code, 0, "{err}");
    let values = npy::read(&out).unwrap().data;
    assert!(values.iter().all(|v| v.is_finite()), "{values:?}");

    let set = |value: f64| {
        let m = model();
        {
            let _guard = tch::no_grad_guard();
            let (_, w) = &m.network.parameters()[0];
            let _ = w.shallow_clone().view([-1]).get(7).fill_(value);
        }
        m
    };
    let mut far = model();
    far.normalisation.centre[2] = 1e308;
    for (name, bad, needle) in [
        (
            "nan",
            set(f64::NAN),
            "tensor hidden.0.weight holds NaN at element 7",
        ),
        (
            "inf",
            set(f64::NEG_INFINITY),
            "tensor hidden.0.weight holds -inf",
        ),
        ("centre", far, "centre 1e308 (z)"),
    ] {
        let path = dir.join(format!("{name}.safetensors"));
        // Saving refuses such a model; the damaged file is written
        // unchecked, as a damaged copy would be.
        assert!(save_model(&bad, &path).is_err(), "{name}");
        std::fs::write(&path, hisdf::model::serialise_unchecked(&bad).unwrap()).unwrap();
        let out = dir.join(format!("{name}.npy"));
        let (code, _, err) = run(hisdf()
            .arg("query")
            .arg(&path)
            .arg(&points)
            .arg("-o")
            .arg(&out));
        assert_eq!(code, 1, "{name}: {err}");
        assert_one_line_error(&err, needle);
        assert!(err.contains("retrain"), "{name}: {err}");
        assert!(!out.exists(), "{name}: an answer was written");
        let mesh = dir.join(format!("{name}.obj"));
        let (code, _, err) = run(hisdf()
            .arg("extract")
            .arg(&path)
            .arg("-o")
            .arg(&mesh)
            .args(["--resolution", "16"]));
        assert_eq!(code, 1, "{name}: {err}");
        assert_one_line_error(&err, needle);
        assert!(!mesh.exists(), "{name}: a mesh was written");
    }
}

/// Every output `train` and `run` will write (the model or mesh, and the
/// configuration beside it) is checked before the training: a path through
/// a regular file, a configuration path taken by a folder, a read-only
/// folder (where permission bits bind; not as root) fail in well under a
/// second, with nothing written and nothing of the user's touched.
#[test]
fn unwritable_outputs_fail_before_training() {
    let dir = scratch("unwritable");
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, b"the user's notes").unwrap();
    std::fs::create_dir(dir.join("taken.config.json")).unwrap();
    let mut cases = vec![
        (
            vec!["train".to_string()],
            notes.join("model.safetensors"),
            "is not a folder",
        ),
        (
            vec!["train".to_string()],
            dir.join("taken.safetensors"),
            "taken.config.json: is a folder",
        ),
        (
            vec!["run".to_string()],
            dir.join("taken.obj"),
            "taken.config.json: is a folder",
        ),
    ];
    use std::os::unix::fs::PermissionsExt;
    let locked = dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::File::create(locked.join("probe")).is_err() {
        cases.push((
            vec!["train".to_string()],
            locked.join("model.safetensors"),
            "cannot write in this folder",
        ));
    } else {
        println!("read-only folder case skipped: permission bits do not bind this user (root)");
    }
    for (command, output, needle) in cases {
        let start = std::time::Instant::now();
        let (code, _, err) = run(hisdf()
            .args(&command)
            .arg(mesh_path("block-2x4.stl"))
            .arg("-o")
            .arg(&output)
            // A training that would take an hour on this CPU: a failure
            // that comes back within half a minute came before it, even on
            // a loaded machine.
            .args(["--device", "cpu", "--iterations", "1000000"]));
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(code, 1, "{output:?}: {err}");
        assert_one_line_error(&err, needle);
        assert!(
            seconds < 30.0,
            "{output:?}: took {seconds:.2} s, so it trained"
        );
        assert!(!output.exists(), "{output:?} was written");
    }
    assert_eq!(std::fs::read(&notes).unwrap(), b"the user's notes");
    assert!(dir.join("taken.config.json").is_dir());
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// An open box trained as a solid is told it will be closed and pointed to
/// the shell; trained as a shell (a few CPU iterations of a tiny network)
/// it says so, and the model file records the band.
#[test]
fn an_open_mesh_trains_as_a_shell_on_request() {
    let dir = scratch("shell");
    let mut open = hisdf::mesh::primitives::unit_cube();
    open.triangles.truncate(10);
    let mesh = dir.join("box.obj");
    hisdf::mesh::write_obj(&open, &mesh).unwrap();
    let train = |extra: &[&str]| {
        run(hisdf()
            .arg("train")
            .arg(&mesh)
            .arg("-o")
            .arg(dir.join("m.safetensors"))
            .args([
                "--iterations",
                "5",
                "--width",
                "8",
                "--depth",
                "2",
                "--device",
                "cpu",
                "--keep-unconverged",
                "--set",
                "surface_samples=500",
                "--set",
                "shells=2000:1e-3",
                "--set",
                "uniform_samples=500",
            ])
            .args(extra))
    };
    let (code, _, err) = train(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("4 boundary edges: the mesh is open")
            && err.contains("closed over")
            && err.contains("train a shell")
            && err.contains("--surface shell"),
        "{err}"
    );
    let (code, _, err) = train(&["--surface", "shell", "--shell-thickness", "0.04"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("trained as a shell"), "{err}");
    let model = hisdf::model::load_model(&dir.join("m.safetensors"), tch::Device::Cpu).unwrap();
    assert_eq!(
        model.metadata.surface,
        hisdf::sampling::Surface::Shell { thickness: 0.04 }
    );
    let (code, _, err) = train(&["--surface", "shell", "--shell-thickness", "0"]);
    assert_eq!(code, 1);
    assert_one_line_error(&err, "--shell-thickness");
}

/// `hisdf render` refuses what it cannot draw with one line that says what
/// to change: "-" (an empty tile) cannot frame the picture, angles must be
/// numbers, and a bad file is named once.
#[test]
fn render_refusals_say_what_to_change() {
    let dir = scratch("render-refusals");
    let png = dir.join("row.png");
    let brick = "data/meshes/block-2x4.stl";
    let empty = dir.join("empty.stl");
    std::fs::write(&empty, b"").unwrap();
    let render = |args: &[&str]| {
        let (code, _, err) = run(hisdf()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("render")
            .args(args)
            .arg("-o")
            .arg(&png)
            .args(["--size", "32"]));
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        err
    };
    let err = render(&["-", brick]);
    assert!(err.contains("give the original first"), "{err}");
    let err = render(&[brick, "--azimuth", "nan"]);
    assert!(err.contains("finite numbers of degrees"), "{err}");
    let err = render(&[empty.to_str().unwrap()]);
    assert_eq!(err.matches("empty.stl").count(), 1, "{err}");
    assert!(
        err.contains("export the object as a mesh with faces"),
        "{err}"
    );
    assert!(!png.exists(), "nothing is written on a refusal");
}
