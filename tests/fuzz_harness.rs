//! The fuzz harness's own checks: a reader that panics, hoards memory or
//! hangs must be reported, or a clean run of tests/fuzz.rs would prove
//! nothing. A test binary of its own because the allocator's count is one
//! per process: beside tests/fuzz.rs's readers, this file's 200 MB hoard
//! would be charged to whichever input was being measured, and their
//! measurements could reset this one's peak (the CI failure of stop 18).

#[path = "fuzz/engine.rs"]
mod engine;

#[global_allocator]
static ALLOC: engine::CountingAlloc = engine::CountingAlloc;

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
