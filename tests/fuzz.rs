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

/// The harness itself: a reader that panics, hoards memory or hangs must be
/// reported, or a clean run would prove nothing.
#[test]
fn the_harness_reports_panics_memory_and_hangs() {
    let runner = engine::Runner::with(vec![
        engine::Target {
            name: "fine",
            run: |_| Err("a clear message".into()),
        },
        engine::Target {
            name: "panics",
            run: |b| {
                let _ = b[b.len()];
                Ok(())
            },
        },
        engine::Target {
            name: "hoards",
            run: |_| {
                let v = vec![1u8; 200 << 20];
                std::hint::black_box(&v);
                Ok(())
            },
        },
        engine::Target {
            name: "hangs",
            run: |_| loop {
                std::thread::park();
            },
        },
    ]);
    assert!(runner.check(0, b"x").is_none());
    assert!(matches!(
        runner.check(1, b"x"),
        Some(engine::Finding::Panic(_))
    ));
    assert!(matches!(
        runner.check(2, b"x"),
        Some(engine::Finding::Memory { bytes }) if bytes >= 200 << 20
    ));
    // Last: after a hang the worker is gone.
    assert!(matches!(runner.check(3, b"x"), Some(engine::Finding::Hang)));
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
