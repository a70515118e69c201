//! The long fuzz run, one command:
//! `scripts/cargo run --release --example fuzz -- --seconds 3600 [--seed N]`.
//! Same engine as tests/fuzz.rs; wrong inputs are saved to
//! tests/fuzz/corpus/<target>/ and from then on replayed by `cargo test`.

#[path = "../tests/fuzz/engine.rs"]
mod engine;

use std::time::Duration;

#[global_allocator]
static ALLOC: engine::CountingAlloc = engine::CountingAlloc;

fn main() {
    let mut seconds = 3600u64;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (arg.as_str(), value) {
            ("--seconds", Some(v)) => seconds = v,
            ("--seed", Some(v)) => seed = v,
            _ => {
                eprintln!("usage: fuzz [--seconds N] [--seed N]");
                std::process::exit(2);
            }
        }
    }
    let runner = engine::Runner::new();
    let (replayed, mut failures) = engine::replay(&runner);
    println!("replayed {replayed} corpus files; fuzzing {seconds} s from seed {seed}");
    let (runs, found) = engine::fuzz(&runner, Duration::from_secs(seconds), seed);
    failures.extend(found);
    println!("{runs} mutated inputs, {} wrong", failures.len());
    for f in &failures {
        println!("  {f}");
    }
    // A hung worker would keep the process alive; exit explicitly.
    std::process::exit(if failures.is_empty() { 0 } else { 1 });
}
