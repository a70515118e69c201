//! `hisdf` starts without libtorch (issue 18): the binary users run links
//! hisdf-geometry only and runs the torch-free commands itself; the others
//! it hands to `hisdf-torch` by exec. How fast it starts is measured by
//! bench/cli_start.sh, not here; here is what makes it fast and what must
//! not change for a user.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const HISDF: &str = env!("CARGO_BIN_EXE_hisdf");
const HISDF_TORCH: &str = env!("CARGO_BIN_EXE_hisdf-torch");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hisdf-start-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mesh_path(name: &str) -> String {
    format!("{}/data/meshes/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The shared libraries an ELF file asks the loader for (DT_NEEDED), read
/// by binutils' readelf.
fn needed(binary: &str) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-d", binary])
        .output()
        .expect("readelf (binutils, installed with gcc) runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

fn is_torch(lib: &str) -> bool {
    lib.starts_with("libtorch") || lib.starts_with("libc10")
}

#[test]
fn hisdf_asks_the_loader_for_no_libtorch() {
    let light = needed(HISDF);
    assert!(
        light.iter().any(|l| l.starts_with("libc.so")),
        "the scan found no libc in {light:?}: is it broken?"
    );
    let torch: Vec<_> = light.iter().filter(|l| is_torch(l)).collect();
    assert!(
        torch.is_empty(),
        "hisdf needs {torch:?}: something in src/bin/hisdf/start.rs reaches the hisdf crate or build.rs links libtorch into it"
    );
    // The other binary does link it (with libtorch_cuda where the build's
    // libtorch has CUDA), so the scan tells the two apart.
    assert!(
        needed(HISDF_TORCH)
            .iter()
            .any(|l| l.starts_with("libtorch")),
        "hisdf-torch should link libtorch"
    );
}

/// A folder holding only a copy of `hisdf`: no hisdf-torch beside it, so no
/// command there can reach libtorch.
fn hisdf_alone(dir: &Path) -> PathBuf {
    let copy = dir.join("hisdf");
    std::fs::copy(HISDF, &copy).unwrap();
    copy
}

#[test]
fn torch_free_commands_run_without_hisdf_torch_and_the_others_say_what_is_missing() {
    let dir = scratch("alone");
    let hisdf = hisdf_alone(&dir);
    let mesh = mesh_path("block-2x4.stl");
    let points = dir.join("points.npy");
    let pts: Vec<f32> = vec![0.0, 0.0, 0.0, 10.0, 5.0, 0.0, 100.0, 0.0, 0.0];
    hisdf_geometry::io::npy::write(&points, &[3, 3], &pts).unwrap();
    let sdf = dir.join("sdf.npy");
    let samples = dir.join("samples.npy");
    let png = dir.join("block.png");
    let runs: Vec<Vec<String>> = vec![
        vec!["--version".into()],
        vec!["--help".into()],
        vec!["info".into(), mesh.clone(), "--json".into()],
        vec![
            "sdf".into(),
            mesh.clone(),
            points.display().to_string(),
            "-o".into(),
            sdf.display().to_string(),
        ],
        vec![
            "sample".into(),
            mesh.clone(),
            "-o".into(),
            samples.display().to_string(),
            "--strategy".into(),
            "uniform".into(),
            "--count".into(),
            "500".into(),
        ],
        vec![
            "render".into(),
            mesh.clone(),
            "-o".into(),
            png.display().to_string(),
            "--size".into(),
            "32".into(),
        ],
        vec![
            "eval".into(),
            mesh.clone(),
            mesh.clone(),
            "--json".into(),
            "--chamfer-points".into(),
            "500".into(),
            "--emd-points".into(),
            "50".into(),
        ],
    ];
    for args in &runs {
        let out = output(
            Command::new(&hisdf)
                .args(args)
                .env_remove("LD_LIBRARY_PATH"),
        );
        assert!(
            out.status.success(),
            "hisdf {args:?} without hisdf-torch: {}",
            text(&out.stderr)
        );
    }
    for file in [&sdf, &samples, &png] {
        assert!(file.is_file(), "{} was not written", file.display());
    }
    // The SDF is the library's: outside at the far point, by its distance.
    let values = hisdf_geometry::io::npy::read(&sdf).unwrap();
    assert_eq!(values.shape, [3]);
    assert!(values.data[2] > 60.0, "{:?}", values.data);

    // The commands that need libtorch, and eval with a model, are handed on;
    // without hisdf-torch that is one clear error line and status 1.
    let model = dir.join("m.safetensors");
    let model = model.display().to_string();
    for args in [
        vec!["train", mesh.as_str(), "-o", model.as_str()],
        vec!["keys"],
        vec![
            "eval",
            mesh.as_str(),
            mesh.as_str(),
            "--model",
            model.as_str(),
        ],
        vec!["help", "train"],
    ] {
        let out = output(Command::new(&hisdf).args(&args));
        assert_eq!(out.status.code(), Some(1), "hisdf {args:?}");
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "hisdf {args:?}: {stderr}");
        assert!(
            lines[0].starts_with("hisdf: error: cannot start hisdf-torch")
                && lines[0].contains("cargo build --release --bins"),
            "hisdf {args:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_help_is_the_same_as_hisdf_torchs_and_names_every_command() {
    let light = output(Command::new(HISDF).arg("--help"));
    // Named `hisdf` as the exec from hisdf names it.
    let torch = output(Command::new(HISDF_TORCH).arg0("hisdf").arg("--help"));
    assert!(light.status.success() && torch.status.success());
    assert_eq!(text(&light.stdout), text(&torch.stdout));
    for command in [
        "info", "sdf", "sample", "render", "eval", "train", "run", "extract",
    ] {
        assert!(
            text(&light.stdout).contains(&format!("\n  {command} ")),
            "{command} missing from {}",
            text(&light.stdout)
        );
    }
    // eval's arguments are defined once (eval.rs) for both.
    let light = output(Command::new(HISDF).args(["eval", "--help"]));
    let torch = output(
        Command::new(HISDF_TORCH)
            .arg0("hisdf")
            .args(["eval", "--help"]),
    );
    assert_eq!(text(&light.stdout), text(&torch.stdout));
    // A torch command's own help comes from hisdf-torch, named hisdf.
    let train = output(Command::new(HISDF).args(["train", "--help"]));
    assert!(train.status.success(), "{}", text(&train.stderr));
    assert!(
        text(&train.stdout).contains("Usage: hisdf train")
            && text(&train.stdout).contains("--preset"),
        "{}",
        text(&train.stdout)
    );
}

#[test]
fn a_torch_command_is_hisdf_torch_in_the_same_process_with_its_output_and_status() {
    // Output and status pass through unchanged.
    let light = output(Command::new(HISDF).args(["keys", "--json"]));
    let torch = output(Command::new(HISDF_TORCH).args(["keys", "--json"]));
    assert!(light.status.success(), "{}", text(&light.stderr));
    assert_eq!(light.stdout, torch.stdout);
    let usage = output(Command::new(HISDF).args(["train", "--iterations", "x"]));
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage.stderr));
    // eval's --device is hisdf-torch's to read, with or without --model.
    let mesh = mesh_path("block-2x4.stl");
    let device = output(Command::new(HISDF).args(["eval", &mesh, &mesh, "--device", "tpu"]));
    assert_eq!(device.status.code(), Some(2), "{}", text(&device.stderr));
    assert!(
        text(&device.stderr).contains("unknown device"),
        "{}",
        text(&device.stderr)
    );

    // Exec, not a child: the process we started becomes hisdf-torch, so a
    // signal sent to it (Ctrl-C, Slurm's) reaches the training itself.
    let dir = scratch("exec");
    let model = dir.join("m.safetensors");
    let mut child = Command::new(HISDF)
        .args(["train", &mesh_path("block-2x4.stl"), "-o"])
        .arg(&model)
        .args(["--device", "cpu", "--iterations", "1000000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let exe = PathBuf::from(format!("/proc/{}/exe", child.id()));
    let start = Instant::now();
    let became = loop {
        let now = std::fs::read_link(&exe).ok();
        if now.as_ref().is_some_and(|p| p.ends_with("hisdf-torch")) {
            break true;
        }
        if start.elapsed() > Duration::from_secs(30) || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(became, "process {} never became hisdf-torch", child.id());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(!model.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
