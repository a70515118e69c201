//! libtorch's CPU BLAS stays libtorch's own in a host that brings another.
//!
//! The torch wheel's `libtorch_cpu.so` carries MKL inside it and calls its
//! BLAS, LAPACK and MKL entry points (`sgemm_`, `cblas_sgemm_batch`,
//! `mkl_...`) through its PLT, so the dynamic linker binds each call to the
//! first definition in the process's global scope. A host executable that
//! links a BLAS of its own comes first in that scope: Debian's Blender links
//! the reference `libblas.so.3`, and inside it every matrix product of
//! training ran in the unblocked Fortran loops, about ten times the CPU time
//! of the same training in a plain Python (issue 22; docs/results.md,
//! "2026-12-02: CPU training inside Blender"). A host with OpenBLAS or
//! another MKL gets calls whose MKL-only arguments that library does not
//! understand (pytorch/pytorch#182263 reports the crashes).
//!
//! [`keep_own_blas`] binds those calls of `libtorch_cpu.so` back to the
//! definitions inside it, as `-Bsymbolic-functions` at its link would have:
//! it rewrites the words of the library that the dynamic linker filled (or
//! would fill) with the address of a BLAS symbol the library defines and the
//! global scope resolves elsewhere, and nothing else. The host's symbols
//! stay as they were: its own BLAS calls still reach its BLAS. In a process
//! where nothing interposes (the CLI, a plain Python) it changes nothing.
//! `RTLD_DEEPBIND` on libtorch would do this for every symbol, but it would
//! also bind libtorch's `malloc` and `free` to glibc's beside a host's
//! jemalloc (Blender's), and a pointer freed by the other allocator aborts
//! the host.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// What [`keep_own_blas`] found and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebinding {
    /// The `libtorch_cpu` loaded in this process, if any.
    pub library: Option<String>,
    /// Its words (GOT slots, MKL's tables of function addresses) that were
    /// bound (or, lazily, would have been bound) to another object's
    /// definition and now hold libtorch's own.
    pub slots: usize,
    /// The objects that had been interposing, as the dynamic linker names
    /// them (for the log: which host library it was).
    pub interposers: Vec<String>,
}

/// Binds `libtorch_cpu.so`'s BLAS, LAPACK and MKL calls to its own
/// definitions, once per process (the first call does the work, later ones
/// return its result). Every C API call runs it before its body, so a host
/// that loads the library gets it before the first training. Logs, at info
/// level, what a host had interposed.
pub fn keep_own_blas() -> &'static Rebinding {
    static DONE: OnceLock<Rebinding> = OnceLock::new();
    DONE.get_or_init(|| {
        let started = std::time::Instant::now();
        let rebinding = imp::rebind();
        log::debug!(
            "libtorch BLAS bindings checked in {:.1} ms: {} rebound",
            started.elapsed().as_secs_f64() * 1e3,
            rebinding.slots
        );
        if rebinding.slots > 0 {
            log::info!(
                "{}: {} BLAS/LAPACK calls were bound to {} (loaded by the host); \
                 bound back to libtorch's own",
                rebinding.library.as_deref().unwrap_or("libtorch_cpu"),
                rebinding.slots,
                rebinding.interposers.join(", ")
            );
        }
        rebinding
    })
}

/// The address libtorch's call of `name` goes to now (its GOT slot's
/// content) and the address of libtorch's own definition; None where
/// libtorch_cpu is not loaded, does not define `name`, or calls it through
/// no slot. Before the first call a lazily bound slot holds its PLT stub.
/// For tests, which check the state [`keep_own_blas`] leaves.
#[cfg(test)]
pub fn slot_of(name: &str) -> Option<(usize, usize)> {
    imp::slot_of(name)
}

/// Whether `name` is one of the symbols a BLAS, LAPACK or MKL library
/// exports: the C interfaces (`cblas_`, `LAPACKE_`, `mkl_`/`MKL_`) and the
/// Fortran ones, lower-case names with a trailing underscore (`sgemm_`,
/// `dgesdd_`, `sgemm_64_`). Only these are rebound: libtorch's other
/// imports (the C++ runtime, OpenMP, the allocator) are the process's to
/// share.
fn is_blas_symbol(name: &str) -> bool {
    let fortran = name.len() > 1
        && name.ends_with('_')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    fortran
        || ["cblas_", "LAPACKE_", "lapacke_", "mkl_", "MKL_"]
            .iter()
            .any(|p| name.starts_with(p))
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod imp {
    use super::*;

    // <elf.h>: dynamic tags, symbol types, relocation types.
    const DT_NULL: i64 = 0;
    const DT_PLTRELSZ: i64 = 2;
    const DT_STRTAB: i64 = 5;
    const DT_SYMTAB: i64 = 6;
    const DT_RELA: i64 = 7;
    const DT_RELASZ: i64 = 8;
    const DT_STRSZ: i64 = 10;
    const DT_PLTREL: i64 = 20;
    const DT_JMPREL: i64 = 23;
    const PT_DYNAMIC: u32 = 2;
    const PT_GNU_RELRO: u32 = 0x6474_e552;
    const STT_FUNC: u8 = 2;
    /// The relocations that put a symbol's address in a word: (type, whether
    /// the addend is added, whether it is a PLT call's slot). The others
    /// (relative, TLS) name no interposable function.
    #[cfg(target_arch = "x86_64")]
    const SLOT_RELOCATIONS: [(u32, bool, bool); 3] = [
        (7, false, true),  // R_X86_64_JUMP_SLOT
        (6, false, false), // R_X86_64_GLOB_DAT
        (1, true, false),  // R_X86_64_64 (MKL's dispatch tables)
    ];
    #[cfg(target_arch = "aarch64")]
    const SLOT_RELOCATIONS: [(u32, bool, bool); 3] = [
        (1026, true, true),  // R_AARCH64_JUMP_SLOT
        (1025, true, false), // R_AARCH64_GLOB_DAT
        (257, true, false),  // R_AARCH64_ABS64
    ];

    #[repr(C)]
    struct Dyn {
        tag: i64,
        val: u64,
    }

    #[repr(C)]
    struct Sym {
        name: u32,
        info: u8,
        other: u8,
        shndx: u16,
        value: u64,
        size: u64,
    }

    #[repr(C)]
    struct Rela {
        offset: u64,
        info: u64,
        addend: i64,
    }

    /// One word of libtorch_cpu that the dynamic linker filled with the
    /// address of a symbol libtorch_cpu defines itself.
    struct Slot {
        name: String,
        at: usize,
        /// libtorch's own definition.
        own: usize,
        /// What the word holds beyond the symbol's address.
        addend: usize,
        /// A PLT call's slot: lazily bound, so it may still hold the stub.
        call: bool,
        relro: bool,
    }

    /// libtorch_cpu as loaded: its name, load address and the program
    /// headers that matter here.
    struct Loaded {
        name: String,
        base: usize,
        dynamic: usize,
        /// The pages the dynamic linker made read-only after relocating,
        /// [start, end): PT_GNU_RELRO with both ends rounded down to a page,
        /// as glibc does; a partial last page stays writable.
        relro: Option<(usize, usize)>,
    }

    fn page_size() -> usize {
        match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            n if n > 0 => n as usize,
            _ => 4096,
        }
    }

    extern "C" fn find_libtorch(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: the dynamic linker passes a valid entry; data is the
        // Option<Loaded> given below.
        let (info, found) = unsafe { (&*info, &mut *(data as *mut Option<Loaded>)) };
        if info.dlpi_name.is_null() {
            return 0;
        }
        let name = unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy();
        let file = name.rsplit('/').next().unwrap_or("");
        if !file.starts_with("libtorch_cpu.") {
            return 0;
        }
        let base = info.dlpi_addr as usize;
        let headers =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let dynamic = headers.iter().find(|h| h.p_type == PT_DYNAMIC);
        let relro = headers.iter().find(|h| h.p_type == PT_GNU_RELRO).map(|h| {
            let down = |a: usize| a & !(page_size() - 1);
            let start = base + h.p_vaddr as usize;
            (down(start), down(start + h.p_memsz as usize))
        });
        if let Some(d) = dynamic {
            *found = Some(Loaded {
                name: name.into_owned(),
                base,
                dynamic: base + d.p_vaddr as usize,
                relro,
            });
            return 1;
        }
        0
    }

    fn loaded() -> Option<Loaded> {
        let mut found: Option<Loaded> = None;
        // SAFETY: the callback only reads the entries it is given.
        unsafe { libc::dl_iterate_phdr(Some(find_libtorch), &mut found as *mut _ as *mut c_void) };
        found
    }

    /// The slots of `lib` that bind a BLAS symbol it defines (a function,
    /// not an IFUNC resolver, whose value would not be the function).
    fn own_slots(lib: &Loaded) -> Vec<Slot> {
        let (mut symtab, mut strtab, mut strsz) = (0usize, 0usize, 0usize);
        let (mut rela, mut relasz, mut jmprel, mut pltrelsz, mut pltrel) = (0, 0, 0, 0, 0);
        // glibc relocates the address entries of a loaded object's dynamic
        // section in place on these targets, other loaders may not: an
        // address below the load address is still relative.
        let address = |v: u64| {
            let v = v as usize;
            if v < lib.base {
                lib.base + v
            } else {
                v
            }
        };
        let mut entry = lib.dynamic as *const Dyn;
        loop {
            // SAFETY: PT_DYNAMIC of a loaded object, ended by DT_NULL.
            let d = unsafe { &*entry };
            match d.tag {
                DT_NULL => break,
                DT_SYMTAB => symtab = address(d.val),
                DT_STRTAB => strtab = address(d.val),
                DT_STRSZ => strsz = d.val as usize,
                DT_RELA => rela = address(d.val),
                DT_RELASZ => relasz = d.val as usize,
                DT_JMPREL => jmprel = address(d.val),
                DT_PLTRELSZ => pltrelsz = d.val as usize,
                DT_PLTREL => pltrel = d.val as i64,
                _ => {}
            }
            entry = unsafe { entry.add(1) };
        }
        if symtab == 0 || strtab == 0 {
            return Vec::new();
        }
        let mut tables = vec![(rela, relasz)];
        // DT_JMPREL holds Rela entries only where DT_PLTREL says so (both
        // supported targets use Rela; a Rel table is not read as one).
        if pltrel == DT_RELA {
            tables.push((jmprel, pltrelsz));
        }
        let mut slots = Vec::new();
        for (table, size) in tables {
            if table == 0 {
                continue;
            }
            let count = size / std::mem::size_of::<Rela>();
            // SAFETY: a relocation table of the loaded object.
            let relocations = unsafe { std::slice::from_raw_parts(table as *const Rela, count) };
            for r in relocations {
                let kind = (r.info & 0xffff_ffff) as u32;
                let Some(&(_, adds, call)) = SLOT_RELOCATIONS.iter().find(|k| k.0 == kind) else {
                    continue;
                };
                let index = (r.info >> 32) as usize;
                // SAFETY: the index of a relocation names a symbol in the
                // object's dynamic symbol table.
                let sym = unsafe { &*(symtab as *const Sym).add(index) };
                if sym.shndx == 0 || sym.info & 0xf != STT_FUNC || sym.name as usize >= strsz {
                    continue;
                }
                let name = unsafe { CStr::from_ptr((strtab + sym.name as usize) as *const c_char) };
                let Ok(name) = name.to_str() else { continue };
                if !is_blas_symbol(name) {
                    continue;
                }
                let at = lib.base + r.offset as usize;
                slots.push(Slot {
                    name: name.to_owned(),
                    at,
                    own: lib.base + sym.value as usize,
                    addend: if adds { r.addend as usize } else { 0 },
                    call,
                    relro: lib
                        .relro
                        .is_some_and(|(start, end)| at >= start && at < end),
                });
            }
        }
        slots
    }

    /// The object that defines `address`, as the dynamic linker names it.
    fn object_of(address: *const c_void) -> Option<String> {
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the address.
        if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(
            unsafe { CStr::from_ptr(info.dli_fname) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// Writes `value` into the word at `at`, making a read-only (RELRO) page
    /// writable for the store and read-only again after it.
    fn store(at: usize, value: usize, relro: bool) -> bool {
        let page = page_size();
        let start = at & !(page - 1);
        if relro {
            // SAFETY: the page holds the object's GOT, mapped for its life.
            let ok = unsafe {
                libc::mprotect(
                    start as *mut c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if ok != 0 {
                return false;
            }
        }
        // SAFETY: an aligned GOT slot of a loaded object; another thread
        // calling through it reads either the old target or the new one,
        // both valid functions of the same signature.
        unsafe { std::sync::atomic::AtomicUsize::from_ptr(at as *mut usize) }
            .store(value, std::sync::atomic::Ordering::Release);
        if relro {
            unsafe { libc::mprotect(start as *mut c_void, page, libc::PROT_READ) };
        }
        true
    }

    pub(super) fn rebind() -> Rebinding {
        let Some(lib) = loaded() else {
            return Rebinding::default();
        };
        let mut out = Rebinding {
            library: Some(lib.name.clone()),
            ..Rebinding::default()
        };
        let mut winners = std::collections::HashMap::new();
        for slot in own_slots(&lib) {
            // What the dynamic linker binds (or bound) this name to: the
            // first definition in the global scope.
            let winner = *winners.entry(slot.name.clone()).or_insert_with(|| {
                std::ffi::CString::new(slot.name.as_str()).map_or(0, |c| unsafe {
                    libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) as usize
                })
            });
            if winner == 0 || winner == slot.own {
                continue;
            }
            // A word outside the PLT's slots that no longer holds what the
            // dynamic linker put there was set by the program since: its.
            let now = unsafe { std::sync::atomic::AtomicUsize::from_ptr(slot.at as *mut usize) }
                .load(std::sync::atomic::Ordering::Acquire);
            if !slot.call && now != winner.wrapping_add(slot.addend) {
                continue;
            }
            if !store(slot.at, slot.own.wrapping_add(slot.addend), slot.relro) {
                continue;
            }
            let winner = winner as *const c_void;
            out.slots += 1;
            let who = object_of(winner).unwrap_or_else(|| "an unnamed object".into());
            if !out.interposers.contains(&who) {
                out.interposers.push(who);
            }
        }
        out
    }

    #[cfg(test)]
    pub(super) fn slot_of(name: &str) -> Option<(usize, usize)> {
        let lib = loaded()?;
        own_slots(&lib)
            .into_iter()
            .find(|s| s.call && s.name == name)
            .map(|s| {
                // SAFETY: an aligned GOT slot of a loaded object.
                let now = unsafe { std::sync::atomic::AtomicUsize::from_ptr(s.at as *mut usize) }
                    .load(std::sync::atomic::Ordering::Acquire);
                (now, s.own)
            })
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod imp {
    use super::*;

    // Other systems resolve a library's own calls otherwise (two-level
    // namespaces on macOS, import tables on Windows): nothing to rebind.
    pub(super) fn rebind() -> Rebinding {
        Rebinding::default()
    }

    #[cfg(test)]
    pub(super) fn slot_of(_name: &str) -> Option<(usize, usize)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blas_family_is_named_and_nothing_else() {
        for name in [
            "sgemm_",
            "dgesdd_",
            "sgemm_64_",
            "xerbla_",
            "cblas_sgemm_batch",
            "LAPACKE_sgesvd",
            "mkl_blas_sgemm",
            "MKL_Get_Max_Threads",
        ] {
            assert!(is_blas_symbol(name), "{name}");
        }
        for name in [
            "malloc",
            "free",
            "_Znwm",
            "GOMP_parallel",
            "omp_get_max_threads",
            "_ZNSt6vectorIiSaIiEE7reserveEm",
            "_",
            "Sgemm_",
            "__cxa_demangle",
        ] {
            assert!(!is_blas_symbol(name), "{name}");
        }
    }

    /// In this process nothing links a BLAS before libtorch (the test
    /// binary's own libraries come first): nothing is rebound, and libtorch's
    /// sgemm_ call, once made, is its own.
    #[test]
    fn nothing_changes_where_nothing_interposes() {
        let _ = tch::Tensor::ones([8, 8], (tch::Kind::Float, tch::Device::Cpu)).matmul(
            &tch::Tensor::ones([8, 8], (tch::Kind::Float, tch::Device::Cpu)),
        );
        let r = keep_own_blas();
        assert!(
            r.library.is_some(),
            "libtorch_cpu is loaded in a test binary"
        );
        assert_eq!(r.slots, 0, "{r:?}");
        let (now, own) = slot_of("sgemm_").expect("libtorch_cpu calls sgemm_ through its GOT");
        assert_eq!(now, own);
    }

    const CHILD: &str = "HISDF_TEST_BLAS_CHILD";

    /// The host case, made here: this test binary again with the system's
    /// reference BLAS preloaded (so it is first in the global scope, as in
    /// Debian's Blender). Before the rebinding libtorch's sgemm_ call goes
    /// to that BLAS; after it, to libtorch's own; the process's own global
    /// sgemm_ stays the host's.
    #[test]
    fn a_preloaded_blas_no_longer_takes_libtorchs_calls() {
        let blas = [
            "/lib/x86_64-linux-gnu/libblas.so.3",
            "/lib/aarch64-linux-gnu/libblas.so.3",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
        if std::env::var_os(CHILD).is_some() {
            child_checks();
            return;
        }
        let Some(blas) = blas else {
            eprintln!("SKIPPED: no system libblas.so.3 to preload (apt-get install libblas3)");
            return;
        };
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ffi::libtorch_blas::tests::a_preloaded_blas_no_longer_takes_libtorchs_calls",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env("LD_PRELOAD", blas)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("child checks passed"), "{text}");
    }

    fn child_checks() {
        let ones = || tch::Tensor::ones([64, 64], (tch::Kind::Float, tch::Device::Cpu));
        let _ = ones().matmul(&ones());
        let (before, own) = slot_of("sgemm_").expect("libtorch_cpu calls sgemm_ through its GOT");
        let host = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sgemm_".as_ptr()) } as usize;
        assert_ne!(
            host, own,
            "the preloaded BLAS comes first in the global scope"
        );
        assert_eq!(
            before, host,
            "libtorch's first sgemm_ call bound to the preloaded BLAS"
        );
        let r = keep_own_blas();
        assert!(r.slots > 0, "{r:?}");
        assert!(r.interposers.iter().any(|i| i.contains("libblas")), "{r:?}");
        let (after, own) = slot_of("sgemm_").unwrap();
        assert_eq!(after, own, "libtorch's sgemm_ call is its own again");
        let still = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sgemm_".as_ptr()) } as usize;
        assert_eq!(still, host, "the host's own sgemm_ is left alone");
        // And the product is still right through MKL.
        let product = ones().matmul(&ones());
        assert_eq!(product.double_value(&[3, 5]), 64.0);
        println!("child checks passed");
    }
}
