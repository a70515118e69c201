//! Build script: makes the library and the command-line tool find libtorch
//! without LD_LIBRARY_PATH, keeps libtorch_cuda linked, and generates the C
//! header with cbindgen.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The header's version macros come from the package version.
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=HISDF_UPDATE_HEADER");
    println!("cargo:rerun-if-changed=src/train/native/step.cpp");
    link_libtorch();
    generate_header();
}

/// One number of the package version ("MAJOR", "MINOR" or "PATCH").
fn version_part(which: &str) -> String {
    std::env::var(format!("CARGO_PKG_VERSION_{which}")).unwrap_or_else(|_| "0".into())
}

fn link_libtorch() {
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report its libtorch folder; set LD_LIBRARY_PATH at run time");
        return;
    };
    let lib_dir = PathBuf::from(lib_dir);
    // An ABI-versioned SONAME, so hosts link against the ABI rather than a
    // file and two versions can be installed side by side; before 1.0 the
    // minor number is the ABI (bindings/cpp installs the matching links).
    let (major, minor) = (version_part("MAJOR"), version_part("MINOR"));
    let soname = if major == "0" {
        format!("libhisdf.so.0.{minor}")
    } else {
        format!("libhisdf.so.{major}")
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    // $ORIGIN first: a packaged install (Blender add-on, wheel) puts libtorch
    // beside libhisdf.so and must win over the build machine's path.
    // For every target (the library's unit tests have no link-arg variant
    // of their own); in the `hisdf` binary, which needs no libtorch, a run
    // path does nothing.
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    // rustc links with --as-needed, which drops libtorch_cuda.so because no
    // symbol of ours references it; without it libtorch never registers its
    // CUDA backend and every run silently falls back to the CPU.
    let with_cuda = lib_dir.join("libtorch_cuda.so").exists();
    if with_cuda {
        link_torch_cuda();
    }
    compile_native(&lib_dir, with_cuda);
}

/// libtorch_cuda for every target that links libtorch: the library,
/// hisdf-torch, tests and examples (the library's unit tests reference its
/// symbols through the native step), but not the `hisdf` binary, which uses
/// hisdf-geometry only and must not load libtorch at start
/// (tests/cli_start.rs checks its ELF).
fn link_torch_cuda() {
    let arg = "-Wl,--no-as-needed,-ltorch_cuda,--as-needed";
    println!("cargo:rustc-link-arg-cdylib={arg}");
    println!("cargo:rustc-link-arg-bin=hisdf-torch={arg}");
    println!("cargo:rustc-link-arg-tests={arg}");
    println!("cargo:rustc-link-arg-examples={arg}");
}

/// Compiles src/train/native/step.cpp (fused Adam, TF32, CUDA graphs: what
/// tch does not expose) against the same libtorch headers.
fn compile_native(lib_dir: &Path, with_cuda: bool) {
    let torch_root = lib_dir.parent().expect("torch/lib has a parent");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("src/train/native/step.cpp")
        .include(torch_root.join("include"))
        .flag("-std=c++17")
        .flag("-w")
        .define("_GLIBCXX_USE_CXX11_ABI", "1");
    // The PyPI wheel's CUDA headers live in the nvidia/cu13 package beside
    // torch; a CPU-only libtorch has neither, and then graphs are off.
    let cuda_include = torch_root
        .parent()
        .map(|site| site.join("nvidia").join("cu13").join("include"));
    match cuda_include {
        Some(inc) if with_cuda && inc.join("cuda_runtime_api.h").exists() => {
            build.include(inc).define("HISDF_WITH_CUDA", None);
            println!("cargo:rustc-link-lib=dylib=c10_cuda");
        }
        _ => println!("cargo:warning=no CUDA headers found: CUDA graphs disabled"),
    }
    build.compile("hisdf_native");
}

fn generate_header() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    // The version the header was generated for, from Cargo.toml: a host
    // compares it with hisdf_version() of the library it loaded.
    config.after_includes = Some(format!(
        "\n// The version of hisdf this header belongs to; hisdf_version() gives the\n\
         // loaded library's. 0.x releases change the ABI with the minor number.\n\
         #define HISDF_VERSION_MAJOR {}\n#define HISDF_VERSION_MINOR {}\n#define HISDF_VERSION_PATCH {}",
        version_part("MAJOR"),
        version_part("MINOR"),
        version_part("PATCH"),
    ));
    let fresh = out_dir.join("hisdf.h");
    match cbindgen::generate_with_config(&crate_dir, config) {
        Ok(bindings) => {
            bindings.write_to_file(&fresh);
        }
        Err(e) => {
            // A parse error in src/ will be reported by rustc with a better
            // message; the header test then fails on the missing file.
            println!("cargo:warning=cbindgen failed: {e}");
            return;
        }
    }
    // CI checks the committed header against the fresh one (tests/header.rs),
    // so it must not be refreshed there; on a developer's machine it is.
    let in_ci = std::env::var_os("CI").is_some();
    let forced = std::env::var_os("HISDF_UPDATE_HEADER").is_some();
    if !in_ci || forced {
        update_if_changed(&fresh, &crate_dir.join("include").join("hisdf.h"));
    }
}

fn update_if_changed(fresh: &Path, committed: &Path) {
    let new = std::fs::read(fresh).unwrap_or_default();
    if std::fs::read(committed).ok().as_deref() != Some(&new[..]) {
        let _ = std::fs::create_dir_all(committed.parent().unwrap());
        if let Err(e) = std::fs::write(committed, &new) {
            println!(
                "cargo:warning=could not update {}: {e}",
                committed.display()
            );
        }
    }
}
