//! Training benchmark: the paper's settings through hisdf's libtorch loop,
//! timed the same way as bench/train/torch_reference.py (median seconds per
//! iteration over windows of 100, total, mean loss of the last window).
//! Writes the samples it trained on, so the PyTorch reference trains on
//! exactly the same points.
//!
//!   bench_train MESH SAMPLES_OUT.npy [--iterations N] [--loss curriculum|l1]
//!               [--tf32|--precision fp32|tf32|bf16] [--preset NAME] [--no-graph] [--depth D] [--width W] [--batch B]
//!               [--model-out MODEL.safetensors] [--report-every K] [--verbose]
//!               [--models K]
//!
//! `--models K` trains K networks of the shape at once (seeds 0..K-1) in one
//! batched step; the JSON line then also gives ms per shape-step.

use std::time::Instant;

use hisdf::mesh;
use hisdf::model::NetworkConfig;
use hisdf::pipeline::{prepare_mesh, Preset};
use hisdf::sampling::near_surface;
use hisdf::sdf::MeshSdf;
use hisdf::train::{train_batch, Loss, Precision, ReduceLrOnPlateau, Scheduler, TrainInput};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bench_train MESH SAMPLES_OUT.npy [--iterations N] [--loss curriculum|l1] [--tf32|--precision fp32|tf32|bf16] [--preset NAME] [--no-graph] [--depth D] [--width W]");
        std::process::exit(2);
    }
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let preset: Preset = value("--preset").map_or(Preset::PaperCurriculum, |p| {
        p.parse()
            .expect("--preset fast|detail|paper-l1|paper-curriculum")
    });
    let mut recipe = preset.recipe();
    if value("--loss").as_deref() == Some("l1") {
        recipe.training.loss = Loss::ClampedL1 { clamp: Some(0.1) };
        recipe.training.scheduler = Scheduler::Plateau(ReduceLrOnPlateau::paper());
        recipe.training.iterations = 10_000;
    }
    if let Some(n) = value("--iterations") {
        recipe.training.iterations = n.parse().expect("--iterations N");
    }
    if let Some(b) = value("--batch") {
        recipe.training.batch_size = b.parse().expect("--batch B");
    }
    recipe.network = NetworkConfig {
        depth: value("--depth").map_or(8, |d| d.parse().expect("--depth D")),
        width: value("--width").map_or(512, |w| w.parse().expect("--width W")),
        ..recipe.network
    };
    if flag("--tf32") {
        recipe.training.precision = Precision::Tf32;
    }
    if let Some(p) = value("--precision") {
        recipe.training.precision = p.parse().expect("--precision fp32|tf32|bf16");
    }

    recipe.training.cuda_graph = !flag("--no-graph");
    if let Some(k) = value("--report-every") {
        recipe.training.progress_every = k.parse().expect("--report-every K");
    }
    let verbose = flag("--verbose");

    let prepared =
        prepare_mesh(mesh::load(args[1].as_ref()).expect("mesh loads")).expect("mesh is usable");
    let sdf = MeshSdf::new(&prepared.normalised);
    let t = Instant::now();
    let samples = near_surface(&prepared.normalised, &sdf, &recipe.sampling, 0);
    let sampling_s = t.elapsed().as_secs_f64();
    samples.save_npy(args[2].as_ref()).expect("samples written");

    let models: usize = value("--models").map_or(1, |k| k.parse().expect("--models K"));
    let configs: Vec<_> = (0..models as u64)
        .map(|seed| {
            let mut c = recipe.training.clone();
            c.seed = seed;
            c
        })
        .collect();
    let inputs: Vec<TrainInput> = configs
        .iter()
        .map(|config| TrainInput {
            samples: &samples,
            normalisation: prepared.normalisation,
            network: &recipe.network,
            config,
        })
        .collect();
    let mut windows = Vec::new();
    let mut last = Instant::now();
    let mut last_iteration = 0;
    let start = Instant::now();
    let mut results = train_batch(&inputs, &mut |j, p| {
        if j > 0 {
            return true;
        }
        let now = Instant::now();
        let done = p.iteration - last_iteration;
        if done > 0 {
            windows.push(now.duration_since(last).as_secs_f64() / done as f64);
        }
        last = now;
        last_iteration = p.iteration;
        if verbose {
            eprintln!(
                "it {} loss {:.4e} lr {:.1e}",
                p.iteration, p.loss, p.learning_rate
            );
        }
        true
    })
    .expect("training runs");
    let model = results.remove(0).expect("training converges");
    let total = start.elapsed().as_secs_f64();
    if let Some(path) = value("--model-out") {
        hisdf::model::save_model(&model, path.as_ref()).expect("model saved");
        // The other networks of a batch beside it: MODEL-1.safetensors, ...
        for (j, other) in results.iter().enumerate() {
            let other = other.as_ref().expect("training converges");
            let stem = path.trim_end_matches(".safetensors");
            let name = format!("{stem}-{}.safetensors", j + 1);
            hisdf::model::save_model(other, name.as_ref()).expect("model saved");
        }
    }
    windows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = windows[windows.len() / 2];
    let mut name = String::from("hisdf-tch");
    if recipe.training.cuda_graph {
        name.push_str("+graph");
    }
    name.push_str(match recipe.training.precision {
        Precision::Fp32 => "-fp32",
        Precision::Tf32 => "-tf32",
        Precision::Bf16 => "-bf16",
    });
    if models > 1 {
        name.push_str(&format!("-x{models}"));
    }
    println!(
        "{{\"impl\": \"{name}\", \"models\": {models}, \"ms_per_iteration\": {:.4}, \"ms_per_shape_step\": {:.4}, \"total_s\": {total:.3}, \"final_loss\": {:.6e}, \"iterations\": {}, \"device\": \"{}\", \"sampling_s\": {sampling_s:.3}}}",
        1e3 * median,
        1e3 * median / models as f64,
        model.metadata.final_loss,
        model.metadata.iterations,
        model.metadata.device
    );
}
