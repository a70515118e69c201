//! The fuzz harness in CI: replays every input ever found wrong
//! (tests/fuzz/corpus/<target>/), then mutation-fuzzes every reader for
//! HISDF_FUZZ_SECONDS in all (default 60). `HISDF_FUZZ_SEED` picks the
//! mutation sequence; the run prints it so a failure can be reproduced.
//! The hour-long run: `scripts/cargo run --release --example fuzz -- --seconds 3600`.

#[path = "fuzz/engine.rs"]
mod engine;

use std::time::Duration;

#[global_allocator]
static ALLOC: engine::CountingAlloc = engine::CountingAlloc;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_reader_survives_its_corpus_and_mutations() {
    // Caught panics still print through the default hook; one line each is
    // enough, the findings list says which input.
    let runner = engine::Runner::new();
    let (replayed, mut failures) = engine::replay(&runner);
    assert!(
        failures.is_empty(),
        "corpus regressions:\n{}",
        failures.join("\n")
    );
    assert!(
        replayed >= 4,
        "the corpus under tests/fuzz/corpus is missing"
    );

    let seconds = env_u64("HISDF_FUZZ_SECONDS", 60);
    let seed = env_u64("HISDF_FUZZ_SEED", 0x5EED);
    eprintln!("fuzz: replayed {replayed} corpus files; fuzzing {seconds} s from seed {seed}");
    let (runs, found) = engine::fuzz(&runner, Duration::from_secs(seconds), seed);
    eprintln!("fuzz: {runs} mutated inputs");
    failures.extend(found);
    assert!(runs > 0, "the fuzzer ran no input");
    assert!(
        failures.is_empty(),
        "inputs handled wrongly (saved to the corpus; fix the reader, keep the file):\n{}",
        failures.join("\n")
    );
}

#[test]
fn mutations_are_deterministic_and_change_the_input() {
    let base = b"solid s\nfacet normal 0 0 1\nendsolid s\n";
    let run = |seed| {
        let mut rng = engine::Rng::new(seed);
        (0..50)
            .map(|_| engine::mutate(&mut rng, base, b"OFF\n"))
            .collect::<Vec<_>>()
    };
    let a = run(3);
    assert_eq!(
        a,
        run(3),
        "one seed must give one sequence, or findings do not reproduce"
    );
    assert_ne!(a, run(4));
    assert!(a.iter().filter(|m| m.as_slice() != base).count() > 40);
}
