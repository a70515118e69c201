//! The C API as a host uses it: C and C++ programs written against nothing
//! but include/hisdf.h (and bindings/cpp/hisdf.hpp), compiled with the
//! system compiler at -Wall -Wextra -Werror, run under AddressSanitizer,
//! driving the whole pipeline on data/meshes/Fennec_Fox.stl plus misuse.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/<profile>/deps/, beside this test's executable: `cargo test`
/// builds the cdylib there and copies it up to target/<profile>/ only on
/// `cargo build`, so the copy above may be missing or stale.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_path_buf();
    assert!(
        dir.join("libhisdf.so").exists(),
        "libhisdf.so not found in {}; build the library first",
        dir.display()
    );
    // Programs linked with -lhisdf load the library by its SONAME, which
    // cargo does not create beside it (an install does).
    let soname = dir.join(soname());
    if !soname.exists() {
        let _ = std::os::unix::fs::symlink("libhisdf.so", &soname);
    }
    dir
}

/// The SONAME build.rs gave the library, as the library itself says.
fn soname() -> String {
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().unwrap().join("libhisdf.so");
    dynamic_entries(&lib, "SONAME")
        .pop()
        .expect("libhisdf.so has a SONAME")
}

/// A dynamic-section entry of an ELF file, as `readelf -d` prints it.
fn dynamic_entries(file: &Path, tag: &str) -> Vec<String> {
    let out = run(Command::new("readelf").arg("-d").arg(file));
    out.lines()
        .filter(|l| l.contains(&format!("({tag})")))
        .filter_map(|l| {
            l.split('[')
                .nth(1)
                .map(|v| v.trim_end_matches(']').to_string())
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hisdf-capi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn compiler(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// Runs a command, failing the test with its output unless it succeeds.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

const WARNINGS: [&str; 3] = ["-Wall", "-Wextra", "-Werror"];

/// Compiles one test program, with AddressSanitizer or without. libtorch
/// itself is not instrumented, so leak checking is off (it reports
/// libtorch's one-time allocations) and the link-order check is off
/// (libtorch's libraries are loaded before the ASan runtime would like).
fn build(cc: &str, std: &[&str], sources: &[&str], out: &Path, asan: bool) {
    let lib = lib_dir();
    let mut cmd = Command::new(cc);
    cmd.args(std).args(WARNINGS).arg("-g");
    if asan {
        cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer"])
            .arg("-DHISDF_TEST_ASAN");
    }
    cmd.arg(format!("-I{}", root().join("include").display()))
        .arg(format!("-I{}", root().join("bindings/cpp").display()));
    for s in sources {
        cmd.arg(root().join("tests/c").join(s));
    }
    cmd.arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg("-lhisdf")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lpthread", "-lm"]);
    run(&mut cmd);
}

fn run_under_asan(program: &Path, dir: &Path) -> String {
    let mesh = root().join("data/meshes/Fennec_Fox.stl");
    let text = run(Command::new(program)
        .arg(&mesh)
        .arg(dir)
        .env("ASAN_OPTIONS", "detect_leaks=0:verify_asan_link_order=0")
        .env_remove("RUST_LOG"));
    assert!(
        !text.contains("AddressSanitizer"),
        "sanitizer report:\n{text}"
    );
    text
}

#[test]
fn header_compiles_as_c99_and_as_cpp() {
    let dir = scratch("header");
    let c = dir.join("only_header.c");
    std::fs::write(
        &c,
        "#include \"hisdf.h\"\nint main(void) { return hisdf_version() == 0; }\n",
    )
    .unwrap();
    let include = format!("-I{}", root().join("include").display());
    run(Command::new(compiler("CC", "cc"))
        .args(["-std=c99", "-pedantic", "-fsyntax-only"])
        .args(WARNINGS)
        .arg(&include)
        .arg(&c));
    let cpp = dir.join("only_header.cpp");
    std::fs::write(
        &cpp,
        "#include \"hisdf.h\"\n#include \"hisdf.hpp\"\nint main() { return hisdf::version().empty(); }\n",
    )
    .unwrap();
    for std in ["-std=c++17", "-std=c++20"] {
        run(Command::new(compiler("CXX", "c++"))
            .args([std, "-pedantic", "-fsyntax-only"])
            .args(WARNINGS)
            .arg(&include)
            .arg(format!("-I{}", root().join("bindings/cpp").display()))
            .arg(&cpp));
    }
}

#[test]
fn c_program_runs_the_pipeline_under_asan_and_plain() {
    let dir = scratch("c");
    let exe = dir.join("pipeline");
    build(
        &compiler("CC", "cc"),
        &["-std=c99", "-pedantic"],
        &["pipeline.c"],
        &exe,
        true,
    );
    let out = run_under_asan(&exe, &dir);
    assert!(out.contains("all checks passed"), "{out}");
    // Without ASan too: only there may the program use a freed handle (ASan
    // rightly reports the read) to check that the library refuses it.
    let plain = dir.join("pipeline_plain");
    build(
        &compiler("CC", "cc"),
        &["-std=c99", "-pedantic"],
        &["pipeline.c"],
        &plain,
        false,
    );
    let out = run(Command::new(&plain)
        .arg(root().join("data/meshes/Fennec_Fox.stl"))
        .arg(&dir));
    assert!(out.contains("all checks passed"), "{out}");
    // The model file and mesh it wrote are real files a reader accepts.
    assert!(dir.join("model.safetensors").metadata().unwrap().len() > 0);
    hisdf::mesh::load(&dir.join("extracted.obj")).expect("the saved mesh loads");
}

/// Lengths that lie, sizes too large to allocate, a double free: every case
/// in a forked child, each must come back as a status (tests/c/misuse.c),
/// with ASan and without, and nothing of Rust's panic machinery may reach
/// the host's stderr.
#[test]
fn c_misuse_returns_statuses_and_never_kills_the_host() {
    let dir = scratch("misuse");
    for asan in [true, false] {
        let exe = dir.join(if asan { "misuse_asan" } else { "misuse" });
        build(
            &compiler("CC", "cc"),
            &["-std=c99", "-pedantic"],
            &["misuse.c"],
            &exe,
            asan,
        );
        // A failing allocation returns NULL under ASan as it does in libc
        // (ASan would otherwise abort on the 512 GiB request on purpose).
        let out = run(Command::new(&exe)
            .env(
                "ASAN_OPTIONS",
                "detect_leaks=0:verify_asan_link_order=0:allocator_may_return_null=1",
            )
            .env_remove("RUST_LOG"));
        assert!(out.contains("all 37 misuse cases returned"), "{out}");
        assert!(
            !out.contains("panicked") && !out.contains("AddressSanitizer"),
            "{out}"
        );
        // The caught panic of the 512 GiB training reached the log callback,
        // as one line that says what failed, without libtorch's backtrace.
        let report = out
            .lines()
            .find(|l| l.contains("log hisdf::ffi: hisdf: caught a panic"))
            .unwrap_or_else(|| panic!("no panic report through the log callback:\n{out}"));
        assert!(
            report.contains("you tried to allocate") && report.contains("use smaller sizes"),
            "{report}"
        );
        assert!(!out.contains("frame #"), "{out}");
    }
}

#[test]
fn cpp_program_runs_the_pipeline_under_asan() {
    let dir = scratch("cpp");
    let exe = dir.join("pipeline_cpp");
    build(
        &compiler("CXX", "c++"),
        &["-std=c++17", "-pedantic"],
        &["pipeline.cpp"],
        &exe,
        true,
    );
    let out = run_under_asan(&exe, &dir);
    assert!(out.contains("all checks passed"), "{out}");
}

/// `find_package(hisdf)` works against the checkout (bindings/cpp as
/// hisdf_DIR) and against an install made by bindings/cpp/CMakeLists.txt.
#[test]
fn cmake_package_works_from_checkout_and_install() {
    if Command::new("cmake").arg("--version").output().is_err() {
        // scripts/test installs cmake; a developer machine may lack it.
        assert!(
            std::env::var_os("CI").is_none(),
            "cmake is missing on CI: scripts/test should have installed it"
        );
        eprintln!("cmake not installed: skipping the CMake package test");
        return;
    }
    let library = format!(
        "-DHISDF_LIBRARY={}",
        lib_dir().join("libhisdf.so").display()
    );
    let dir = scratch("cmake");
    let consumer = root().join("tests/c/cmake_consumer");
    let mesh = root().join("data/meshes/Fennec_Fox.stl");
    let expect_triangles = {
        let m = hisdf::mesh::load(&mesh).unwrap();
        format!("triangles {}", m.triangles.len())
    };
    let prefix = dir.join("prefix");
    run(Command::new("cmake")
        .arg("-S")
        .arg(root().join("bindings/cpp"))
        .arg("-B")
        .arg(dir.join("install-build"))
        .arg(format!("-DCMAKE_INSTALL_PREFIX={}", prefix.display()))
        .arg(&library));
    run(Command::new("cmake")
        .arg("--install")
        .arg(dir.join("install-build")));
    // The checkout layout is told where this build's library is; the
    // install layout must find the installed copy by itself.
    let layouts = [
        (
            "checkout",
            vec![
                format!("-Dhisdf_DIR={}", root().join("bindings/cpp").display()),
                library.clone(),
            ],
        ),
        (
            "install",
            vec![format!("-DCMAKE_PREFIX_PATH={}", prefix.display())],
        ),
    ];
    let want_version = format!(
        "-DHISDF_WANT_VERSION={}.{}",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    // The installed library's RUNPATH is $ORIGIN alone: where this build's
    // libtorch lives (the build tree's second run path) comes from the
    // environment, at link and at run time, as on a host whose libtorch is
    // neither beside libhisdf.so nor in a system folder.
    let torch_lib = dynamic_entries(&lib_dir().join("libhisdf.so"), "RUNPATH")
        .first()
        .and_then(|r| {
            r.split(':')
                .find(|p| !p.starts_with("$ORIGIN"))
                .map(String::from)
        })
        .expect("the build tree's libhisdf.so names its libtorch folder");
    for (name, how) in layouts {
        let build = dir.join(name);
        run(Command::new("cmake")
            .arg("-S")
            .arg(&consumer)
            .arg("-B")
            .arg(&build)
            .arg(&want_version)
            .args(&how));
        run(Command::new("cmake")
            .arg("--build")
            .arg(&build)
            .env("LD_LIBRARY_PATH", &torch_lib));
        for exe in ["consumer_c", "consumer_cpp"] {
            let out = run(Command::new(build.join(exe))
                .arg(&mesh)
                .env("LD_LIBRARY_PATH", &torch_lib));
            assert!(out.contains(&expect_triangles), "{name}/{exe}: {out}");
            // Linked against the ABI, not against a file of this machine.
            assert_eq!(
                dynamic_entries(&build.join(exe), "NEEDED")
                    .iter()
                    .filter(|n| n.starts_with("libhisdf"))
                    .collect::<Vec<_>>(),
                vec![&soname()],
                "{name}/{exe}"
            );
        }
        // A version the package is not must be refused.
        let refused = Command::new("cmake")
            .arg("-S")
            .arg(&consumer)
            .arg("-B")
            .arg(dir.join(format!("{name}-v99")))
            .arg("-DHISDF_WANT_VERSION=99.0")
            .args(&how)
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "{name}: find_package(hisdf 99.0) succeeded"
        );
    }
    // The installed library: SONAME, the versioned file and its links.
    let libdir = ["lib", "lib64"]
        .iter()
        .map(|d| prefix.join(d))
        .find(|d| d.join("libhisdf.so").exists())
        .expect("libhisdf.so installed");
    assert_eq!(
        dynamic_entries(&libdir.join("libhisdf.so"), "SONAME"),
        vec![soname()]
    );
    assert_eq!(
        dynamic_entries(&libdir.join("libhisdf.so"), "RUNPATH"),
        vec!["$ORIGIN".to_string()]
    );
    assert!(libdir.join(soname()).exists());
    assert!(libdir
        .join(format!("libhisdf.so.{}", env!("CARGO_PKG_VERSION")))
        .is_file());
    // pkg-config: a C host built without CMake.
    let pc = libdir.join("pkgconfig");
    if Command::new("pkg-config").arg("--version").output().is_ok() {
        let flags = run(Command::new("pkg-config")
            .args(["--cflags", "--libs", "hisdf"])
            .env("PKG_CONFIG_PATH", &pc));
        let exe = dir.join("consumer_pkgconfig");
        run(Command::new(compiler("CC", "cc"))
            .arg(consumer.join("consumer.c"))
            .arg("-o")
            .arg(&exe)
            .args(flags.split_whitespace())
            .env("LD_LIBRARY_PATH", &torch_lib));
        let out = run(Command::new(&exe)
            .arg(&mesh)
            .env("LD_LIBRARY_PATH", &torch_lib));
        assert!(out.contains(&expect_triangles), "pkg-config: {out}");
        let version = run(Command::new("pkg-config")
            .args(["--modversion", "hisdf"])
            .env("PKG_CONFIG_PATH", &pc));
        assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    } else {
        assert!(pc.join("hisdf.pc").is_file());
    }
}
