//! A small deterministic mutation fuzzer over every file reader a user can
//! hand a file to: the mesh loaders (STL binary and ASCII, OBJ, PLY ASCII and
//! binary, OFF, content sniffing), the .npy reader and the model file reader.
//!
//! Each input must come back as `Ok` or `Err`: never a panic (caught and
//! reported), never a hang (a watchdog per input), never an allocation out of
//! proportion to the input (a counting global allocator). Inputs found wrong
//! are saved under `tests/fuzz/corpus/<target>/` and replayed by
//! `tests/fuzz.rs` from then on, so a fixed bug stays fixed.
//!
//! Shared by `tests/fuzz.rs` (CI: a bounded minute) and `examples/fuzz.rs`
//! (`--seconds 3600`); both declare [`CountingAlloc`] as their allocator.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hisdf::mesh::{self, TriangleMesh};
use hisdf::model::{NetworkConfig, SdfNetwork, TrainedModel, TrainingMetadata};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// One request above this is refused (the process then aborts with "memory
/// allocation failed"), so a loader trusting a declared count cannot take
/// the machine down before the per-input check sees it. Runs are
/// deterministic, so the seed printed at the start reproduces the input.
const HARD_CAP: usize = 1 << 30;

/// Counts live bytes and the peak since [`reset_peak`].
pub struct CountingAlloc;

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > HARD_CAP {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > HARD_CAP {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let live = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// A reader under test. `run` returns the error message, if any.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]) -> Result<(), String>,
}

fn mesh_with(hint: Option<&'static str>) -> impl Fn(&[u8]) -> Result<(), String> {
    move |b| {
        mesh::load_from_bytes(b, hint)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "stl",
            run: |b| mesh_with(Some("stl"))(b),
        },
        Target {
            name: "obj",
            run: |b| mesh_with(Some("obj"))(b),
        },
        Target {
            name: "ply",
            run: |b| mesh_with(Some("ply"))(b),
        },
        Target {
            name: "off",
            run: |b| mesh_with(Some("off"))(b),
        },
        Target {
            name: "sniff",
            run: |b| mesh_with(None)(b),
        },
        Target {
            name: "npy",
            run: |b| {
                hisdf::io::npy::parse(b, Path::new("<fuzz>"))
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        },
        Target {
            name: "model",
            run: |b| {
                hisdf::model::model_from_bytes(b, tch::Device::Cpu)
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        },
    ]
}

pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

fn square() -> TriangleMesh {
    TriangleMesh {
        vertices: vec![[0., 0., 0.], [1., 0., 0.], [1., 1., 0.], [0., 1., 0.]],
        triangles: vec![[0, 1, 2], [0, 2, 3]],
    }
}

/// Valid files to mutate, built by the library's own writers where it has
/// them so they follow the formats exactly, plus hand-written text variants.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let cube = mesh::unit_cube();
    let bytes = |m: &TriangleMesh, f: &str| mesh::to_bytes(m, f).expect("seed mesh encodes");
    let ascii_stl = b"solid s\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\n\
        vertex 0 1 0\nendloop\nendfacet\nendsolid s\n"
        .to_vec();
    let ascii_ply = b"ply\nformat ascii 1.0\ncomment c\nelement vertex 3\nproperty float x\n\
        property float y\nproperty float z\nelement face 1\n\
        property list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
        .to_vec();
    let off = b"OFF\n4 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n3 0 1 2\n4 0 1 2 3\n".to_vec();
    let obj =
        b"v 0 0 0\nv 1 0 0\nv 1 1 0\nvt 0 0\nvn 0 0 1\nf 1/1/1 2//1 -1\no x\nf 1 2 3 \n".to_vec();
    match target {
        "stl" => vec![bytes(&cube, "stl"), bytes(&square(), "stl"), ascii_stl],
        "obj" => vec![bytes(&cube, "obj"), obj],
        "ply" => vec![bytes(&cube, "ply"), ascii_ply],
        "off" => vec![off],
        "sniff" => vec![bytes(&square(), "stl"), ascii_stl, ascii_ply, off, obj],
        "npy" => vec![
            hisdf::io::npy::to_bytes(&[2, 3], &[0f32, 1., 2., 3., 4., 5.]).unwrap(),
            hisdf::io::npy::to_bytes(&[1, 4], &[0f64, 1., 2., -0.5]).unwrap(),
        ],
        "model" => vec![tiny_model()],
        other => panic!("no seeds for {other}"),
    }
}

fn tiny_model() -> Vec<u8> {
    let config = NetworkConfig {
        depth: 2,
        width: 4,
        ..NetworkConfig::default()
    };
    let model = TrainedModel {
        network: SdfNetwork::new(&config, tch::Device::Cpu, 1).expect("tiny network builds"),
        normalisation: mesh::Normalisation {
            centre: [0.0; 3],
            scale: 1.0,
        },
        metadata: TrainingMetadata {
            iterations: 1,
            final_loss: 0.5,
            seconds: 0.1,
            device: "Cpu".into(),
            hisdf_version: "fuzz".into(),
            cancelled: false,
            surface: hisdf::sampling::Surface::Solid,
        },
    };
    hisdf::model::model_to_bytes(&model).expect("tiny model serialises")
}

/// SplitMix64: tiny, fast and reproducible from one seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens that steer text parsers into their edge cases.
const TOKENS: &[&[u8]] = &[
    b"nan",
    b"inf",
    b"-1",
    b"0",
    b"4294967295",
    b"4294967296",
    b"1e39",
    b"-0",
    b"\n",
    b" ",
    b"\r\n",
    b"\0",
    b"\xEF\xBB\xBF",
    b"solid",
    b"endsolid",
    b"facet",
    b"vertex",
    b"endloop",
    b"v",
    b"f",
    b"vt",
    b"//",
    b"/",
    b"element vertex 99999999999",
    b"element face 4000000000",
    b"property list uchar int vertex_indices",
    b"property list uint uint vertex_indices",
    b"end_header",
    b"format binary_big_endian 1.0",
    b"format ascii 1.0",
    b"OFF",
    b"{",
    b"}",
    b"\"",
    b"'shape': (",
    b"18446744073709551615,",
    b"99999999999999999999",
    b"#",
    b"1e-45",
];

fn interesting(len: usize) -> [u64; 10] {
    [
        0,
        1,
        0x7F,
        0xFF,
        0x7FFF_FFFF,
        0xFFFF_FFFF,
        0x8000_0000,
        len as u64,
        len as u64 * 2 + 1,
        u64::MAX,
    ]
}

/// 1 to 4 random edits of `base`, possibly spliced with `other`.
pub fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    const MAX_LEN: usize = 1 << 16;
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = b.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                b[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                b.drain(i..i + n);
            }
            4 => b.truncate(rng.below(len + 1)),
            5 => {
                let at = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                let tail = &other[from..];
                b.truncate(at);
                b.extend_from_slice(&tail[..tail.len().min(MAX_LEN)]);
            }
            6 if len >= 4 => {
                let value = interesting(len)[rng.below(10)];
                let i = rng.below(len - 3);
                if rng.below(2) == 0 || len < i + 8 {
                    b[i..i + 4].copy_from_slice(&(value as u32).to_le_bytes());
                } else {
                    b[i..i + 8].copy_from_slice(&value.to_le_bytes());
                }
            }
            7 => {
                let i = rng.below(len + 1);
                b.splice(i..i, TOKENS[rng.below(TOKENS.len())].iter().copied());
            }
            8 if len > 0 => {
                // Repeat a chunk: long bodies, duplicated records.
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let chunk = b[i..i + n].to_vec();
                for _ in 0..1 + rng.below(8) {
                    b.splice(i..i, chunk.iter().copied());
                }
            }
            _ => {}
        }
        b.truncate(MAX_LEN);
    }
    b
}

/// Why one input is wrong.
#[derive(Debug)]
pub enum Finding {
    Panic(String),
    Hang,
    Memory { bytes: usize },
    BadMessage(String),
}

/// What an input is allowed to cost.
pub const TIME_LIMIT: Duration = Duration::from_secs(5);

fn memory_limit(input_len: usize) -> usize {
    (64 << 20) + 512 * input_len
}

type Job = (usize, Vec<u8>);
type Done = Result<(Result<(), String>, usize), String>;

/// Runs inputs on a worker thread so a hang is seen by the waiting side; the
/// worker catches panics itself.
pub struct Runner {
    names: Vec<&'static str>,
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Done>,
}

impl Runner {
    pub fn new() -> Self {
        Runner::with(targets())
    }

    /// A runner over other targets, so the harness's own checks can be tested.
    pub fn with(targets: Vec<Target>) -> Self {
        let names = targets.iter().map(|t| t.name).collect();
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel::<Done>();
        std::thread::spawn(move || {
            for (t, input) in job_rx {
                let base = reset_peak();
                let run = targets[t].run;
                let outcome = std::panic::catch_unwind(|| run(&input)).map_err(|p| panic_text(&p));
                let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
                if done_tx.send(outcome.map(|r| (r, used))).is_err() {
                    break;
                }
            }
        });
        Runner { names, jobs, done }
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// `None` when the input was handled properly. After a `Hang` the worker
    /// is stuck and the runner must not be used again.
    pub fn check(&self, target: usize, input: &[u8]) -> Option<Finding> {
        self.jobs.send((target, input.to_vec())).ok()?;
        match self.done.recv_timeout(TIME_LIMIT) {
            Err(_) => Some(Finding::Hang),
            Ok(Err(panic)) => Some(Finding::Panic(panic)),
            Ok(Ok((result, used))) => {
                if used > memory_limit(input.len()) {
                    return Some(Finding::Memory { bytes: used });
                }
                match result {
                    // A message a user cannot act on is a finding too: empty,
                    // or a dump.
                    Err(msg) if msg.trim().is_empty() || msg.len() > 2000 => {
                        Some(Finding::BadMessage(msg))
                    }
                    _ => None,
                }
            }
        }
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// The corpus files of one target, sorted for reproducible runs.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("corpus file reads");
            (p, bytes)
        })
        .collect()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Keeps a wrong input as a regression test; returns where.
pub fn save_finding(target: &str, input: &[u8]) -> PathBuf {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).expect("corpus folder can be created");
    let path = dir.join(format!("found-{:016x}.bin", fnv(input)));
    std::fs::write(&path, input).expect("finding can be saved");
    path
}

/// Replays every corpus file; returns the failures as text.
pub fn replay(runner: &Runner) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut failures = Vec::new();
    for (t, name) in runner.names().iter().enumerate() {
        for (path, bytes) in corpus(name) {
            count += 1;
            if let Some(f) = runner.check(t, &bytes) {
                failures.push(format!("{}: {f:?}", path.display()));
                if matches!(f, Finding::Hang) {
                    return (count, failures);
                }
            }
        }
    }
    (count, failures)
}

/// Mutation-fuzzes every target for `total` in all, from `seed`. Each wrong
/// input is saved to the corpus and listed in the result.
pub fn fuzz(runner: &Runner, total: Duration, seed: u64) -> (usize, Vec<String>) {
    let mut rng = Rng::new(seed);
    let names = runner.names().to_vec();
    let share = total / names.len() as u32;
    let mut runs = 0;
    let mut failures = Vec::new();
    for (t, name) in names.iter().enumerate() {
        let mut pool = seeds(name);
        pool.extend(corpus(name).into_iter().map(|(_, b)| b));
        let until = Instant::now() + share;
        while Instant::now() < until {
            let base = &pool[rng.below(pool.len())];
            let other = &pool[rng.below(pool.len())];
            let input = mutate(&mut rng, base, other);
            runs += 1;
            if let Some(f) = runner.check(t, &input) {
                let path = save_finding(name, &input);
                failures.push(format!("{name}: {f:?}, saved as {}", path.display()));
                if matches!(f, Finding::Hang) {
                    return (runs, failures);
                }
            }
        }
    }
    (runs, failures)
}
