//! The C API. This layer only translates: C types in, Rust stages called,
//! statuses and owned errors out.
//!
//! Conventions (they become the top of include/hisdf.h through the doc
//! comment of `HisdfStatus`):
//!
//! - Every function returns a `HisdfStatus`; `HISDF_STATUS_OK` is 0.
//! - Failures can carry a message in an owned `HisdfError` written through
//!   the optional last argument `HisdfError **error` (pass NULL to ignore).
//!   We chose an owned error object over a thread-local "last error" so that
//!   a message can never be overwritten by another call, is safe to pass
//!   between threads, and is freed by `hisdf_error_free`.
//! - Inputs come before outputs; outputs are written only on success; a
//!   buffer pointer is followed by its length in elements.
//! - Handles are created by this library and freed by its `*_free` function,
//!   which accepts NULL. A freed or foreign pointer is detected (by a tag in
//!   the handle) where the memory is still readable and refused with
//!   `HISDF_STATUS_INVALID_HANDLE`.
//! - No panic crosses this boundary: a caught panic is `HISDF_STATUS_PANIC`.

// These functions are entry points for C, where `unsafe` means nothing: the
// C caller vouches for its pointers, and we check every one we can (NULL,
// handle tags, sizes) before use.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod config;
mod handles;
mod libtorch_blas;
mod logging;
mod mesh;
mod model;
mod monitor;

use std::ffi::{c_char, CStr};
use std::path::PathBuf;

pub use config::*;
pub use handles::{
    HisdfBytes, HisdfCancelToken, HisdfConfig, HisdfMesh, HisdfMetrics, HisdfModel, HisdfSamples,
    HisdfTrainMonitor,
};
pub use logging::*;
pub use mesh::*;
pub use model::*;
pub use monitor::{
    hisdf_config_set_monitor, hisdf_train_monitor_free, hisdf_train_monitor_new,
    hisdf_train_monitor_read, HisdfTrainState,
};

use crate::extract::ExtractError;
use crate::mesh::MeshError;
use crate::model::ModelFileError;
use crate::pipeline::JobError;
use crate::train::TrainError;
use crate::util::memory::MemoryShortfall;
use crate::util::{catch_panic, CaughtPanic};

/// Result of every call. Values are fixed forever: new statuses get new
/// numbers, old numbers are never reused.
///
/// Conventions of the whole API:
/// - Every function returns a status; `HISDF_STATUS_OK` is 0.
/// - A failure can hand back an owned `HisdfError` (status + readable
///   message) through the optional last argument `HisdfError **error`; pass
///   NULL to ignore it, free it with `hisdf_error_free`. An owned error was
///   chosen over a thread-local "last error": it cannot be overwritten by a
///   later call and may be passed between threads.
/// - Inputs come before outputs; outputs are written only on success; a
///   buffer pointer is followed by its length in elements, which must be
///   exactly what the call needs. Every length is checked against the
///   others, and against a maximum of 2^34 elements, before any buffer is
///   read; a NULL buffer with length 0 is an empty buffer.
/// - NULL for a required pointer gives `HISDF_STATUS_NULL_ARGUMENT`; only
///   arguments documented as optional may be NULL.
/// - Sizes that decide an allocation (sample counts, batch size, metric
///   points) have documented maxima and are refused above them with
///   `HISDF_STATUS_INVALID_ARGUMENT`. Below them, a training set, metric
///   sample or dense grid this process cannot hold (the machine's
///   available memory, its control group's limit, `ulimit -v`) is refused
///   before it is allocated with `HISDF_STATUS_OUT_OF_MEMORY`, as is an
///   allocation that fails anyway (a network too large for the device).
/// - Every handle has a `*_free` function that accepts NULL. A freed or
///   foreign handle is refused with `HISDF_STATUS_INVALID_HANDLE` while its
///   memory is still readable (a safety net, not a guarantee).
/// - No panic crosses the boundary: a caught panic is `HISDF_STATUS_PANIC`
///   (or `HISDF_STATUS_OUT_OF_MEMORY` for a failed libtorch allocation).
///   Its report goes to the log callback at error level, never to the
///   host's stderr, whichever of the library's threads it happened on.
/// - Points are in the caller's coordinates and SDF values in the caller's
///   units, whatever frame the network was trained in.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HisdfStatus {
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is out of range, a buffer has the wrong size, or a
    /// configuration key or value is unknown.
    InvalidArgument = 2,
    /// A handle is not one of ours, or was already freed.
    InvalidHandle = 3,
    /// A file could not be read or written.
    Io = 4,
    /// A mesh is malformed or unusable (empty, NaN, bad indices).
    InvalidMesh = 5,
    /// A model file is not a hisdf model, is corrupted, or is too new.
    InvalidModelFile = 6,
    /// Training failed (diverged, no samples).
    TrainingFailed = 7,
    /// CUDA was requested but is not available.
    NoCuda = 8,
    /// The progress callback or a cancel token asked to stop. Not an error
    /// of the library: the user changed their mind.
    Cancelled = 9,
    /// Extraction found no surface.
    NoSurface = 10,
    /// A bug in hisdf: a panic was caught at the boundary.
    Panic = 11,
    /// The operation cannot be done in this process, e.g. another logger
    /// already owns the `log` facade of a Rust host.
    Unavailable = 12,
    /// Memory (host or device) ran out: use a smaller size, or the CPU
    /// for a network the GPU cannot hold.
    OutOfMemory = 13,
}

/// The longest buffer, in elements, any call takes: 2^34 (64 GiB of
/// floats). Larger lengths are refused before the buffer is read.
pub(crate) const HISDF_MAX_BUFFER_LEN: usize = 1 << 34;

/// Returns a static, NUL-terminated name for a `HisdfStatus` value, e.g.
/// "HISDF_STATUS_OK". Values this library does not know give
/// "HISDF_STATUS_UNKNOWN".
#[no_mangle]
pub extern "C" fn hisdf_status_name(status: u32) -> *const c_char {
    // Taken as an integer, not as the enum: a value outside the enum (from a
    // newer header, or garbage) would be undefined behaviour in Rust.
    let s: &'static CStr = match status {
        0 => c"HISDF_STATUS_OK",
        1 => c"HISDF_STATUS_NULL_ARGUMENT",
        2 => c"HISDF_STATUS_INVALID_ARGUMENT",
        3 => c"HISDF_STATUS_INVALID_HANDLE",
        4 => c"HISDF_STATUS_IO",
        5 => c"HISDF_STATUS_INVALID_MESH",
        6 => c"HISDF_STATUS_INVALID_MODEL_FILE",
        7 => c"HISDF_STATUS_TRAINING_FAILED",
        8 => c"HISDF_STATUS_NO_CUDA",
        9 => c"HISDF_STATUS_CANCELLED",
        10 => c"HISDF_STATUS_NO_SURFACE",
        11 => c"HISDF_STATUS_PANIC",
        12 => c"HISDF_STATUS_UNAVAILABLE",
        13 => c"HISDF_STATUS_OUT_OF_MEMORY",
        _ => c"HISDF_STATUS_UNKNOWN",
    };
    s.as_ptr()
}

/// The version of the library actually loaded, e.g. "0.1.0" (static string),
/// which may differ from the header a host was compiled against.
#[no_mangle]
pub extern "C" fn hisdf_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// An error: a status and a readable message. Owned by the caller once
/// returned; free with `hisdf_error_free`. Immutable, so it may be read from
/// any thread.
pub struct HisdfError {
    /// As the other handles' tags: wiped on free, so a second free (or a
    /// read after it, while the memory is still mapped) is refused.
    tag: u64,
    status: HisdfStatus,
    message: std::ffi::CString,
}

impl HisdfError {
    const TAG: u64 = 0x6869_7364_6665_7272;

    fn live<'a>(error: *const HisdfError) -> Option<&'a HisdfError> {
        unsafe { error.as_ref() }.filter(|e| e.tag == Self::TAG)
    }
}

/// The status an error carries; NULL gives `HISDF_STATUS_NULL_ARGUMENT`, a
/// freed or foreign pointer `HISDF_STATUS_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn hisdf_error_status(error: *const HisdfError) -> HisdfStatus {
    if error.is_null() {
        return HisdfStatus::NullArgument;
    }
    match HisdfError::live(error) {
        Some(e) => e.status,
        None => HisdfStatus::InvalidHandle,
    }
}

/// The error's message, valid until `hisdf_error_free`. NULL (or a freed
/// error) gives "".
#[no_mangle]
pub extern "C" fn hisdf_error_message(error: *const HisdfError) -> *const c_char {
    match HisdfError::live(error) {
        Some(e) => e.message.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// Frees an error; NULL is ignored, and so is a second free (as for every
/// handle, while the memory is still readable).
#[no_mangle]
pub extern "C" fn hisdf_error_free(error: *mut HisdfError) {
    if let Some(e) = unsafe { error.as_mut() } {
        if e.tag == HisdfError::TAG {
            e.tag = 0;
            release(|| drop(unsafe { Box::from_raw(error) }));
        }
    }
}

/// An error on its way out: the status plus a message.
#[derive(Debug)]
struct Failure(HisdfStatus, String);

impl Failure {
    fn null(what: &str) -> Failure {
        Failure(
            HisdfStatus::NullArgument,
            format!("{what} is NULL; pass a valid pointer"),
        )
    }
    fn invalid(msg: impl Into<String>) -> Failure {
        Failure(HisdfStatus::InvalidArgument, msg.into())
    }
    fn cancelled(what: &str) -> Failure {
        Failure(HisdfStatus::Cancelled, format!("{what} cancelled"))
    }
}

impl From<MeshError> for Failure {
    fn from(e: MeshError) -> Self {
        let status = match e {
            MeshError::Io { .. } => HisdfStatus::Io,
            _ => HisdfStatus::InvalidMesh,
        };
        Failure(status, e.to_string())
    }
}

impl From<ModelFileError> for Failure {
    fn from(e: ModelFileError) -> Self {
        let status = match e {
            ModelFileError::Read { .. }
            | ModelFileError::Write { .. }
            | ModelFileError::Serialise(_) => HisdfStatus::Io,
            ModelFileError::NotRunnable(_) => HisdfStatus::InvalidArgument,
            _ => HisdfStatus::InvalidModelFile,
        };
        Failure(status, e.to_string())
    }
}

impl From<TrainError> for Failure {
    fn from(e: TrainError) -> Self {
        let status = match e {
            TrainError::NoCuda => HisdfStatus::NoCuda,
            TrainError::InvalidConfig(_) => HisdfStatus::InvalidArgument,
            _ => HisdfStatus::TrainingFailed,
        };
        Failure(status, e.to_string())
    }
}

impl From<JobError> for Failure {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Mesh(e) => e.into(),
            JobError::Train(e) => e.into(),
            JobError::Cancelled => Failure::cancelled("training"),
            e @ JobError::NotConverged(_) => Failure(HisdfStatus::TrainingFailed, e.to_string()),
            e @ JobError::Panicked(_) => Failure(HisdfStatus::Panic, e.to_string()),
            JobError::Memory(e) => e.into(),
        }
    }
}

impl From<ExtractError> for Failure {
    fn from(e: ExtractError) -> Self {
        let status = match e {
            ExtractError::Resolution { .. } | ExtractError::Precision => {
                HisdfStatus::InvalidArgument
            }
            ExtractError::Cancelled => HisdfStatus::Cancelled,
            ExtractError::NoSurface => HisdfStatus::NoSurface,
            ExtractError::Memory(_) => HisdfStatus::OutOfMemory,
        };
        Failure(status, e.to_string())
    }
}

impl From<MemoryShortfall> for Failure {
    fn from(e: MemoryShortfall) -> Self {
        Failure(HisdfStatus::OutOfMemory, e.to_string())
    }
}

impl From<tch::TchError> for Failure {
    fn from(e: tch::TchError) -> Self {
        Failure(HisdfStatus::TrainingFailed, format!("libtorch failed: {e}"))
    }
}

thread_local! {
    /// Set while this thread runs a C API call's body.
    static IN_BOUNDARY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// C API calls running now, on any thread. A call's parallel work runs on
/// rayon's worker threads, where `IN_BOUNDARY` is not set; a panic there
/// would reach the host's stderr before rayon hands it to the calling
/// thread's boundary.
static CALLS_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether a panic on this thread belongs to a C API call: raised in a
/// call's body, or on a rayon worker while a call runs (a Rust host's own
/// rayon work at that moment is taken for ours: it is logged, not printed).
fn panic_is_ours() -> bool {
    IN_BOUNDARY.with(|b| b.get())
        || (rayon::current_thread_index().is_some()
            && CALLS_RUNNING.load(std::sync::atomic::Ordering::SeqCst) > 0)
}

/// Panics inside a C API call go to the log callback, never to the host's
/// stderr (Rust's default hook prints there). Installed on the first call;
/// panics anywhere else (a Rust host's own, a test's assertion) still go to
/// the hook that was there before.
fn quiet_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if panic_is_ours() {
                // The first line only: a libtorch failure carries its C++
                // backtrace (dozens of frames of no use to a host's user).
                let caught = CaughtPanic::from_payload(info.payload());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                log::error!("hisdf: caught a panic{at}: {}", caught.message());
            } else {
                previous(info);
            }
        }))
    });
}

/// What a caught panic becomes: a failed allocation is the caller's size
/// (`HISDF_STATUS_OUT_OF_MEMORY`), anything else our bug.
fn panic_failure(panic: CaughtPanic) -> Failure {
    let status = if panic.out_of_memory {
        HisdfStatus::OutOfMemory
    } else {
        HisdfStatus::Panic
    };
    Failure(status, panic.message())
}

/// The panic boundary every exported function body runs in.
fn boundary(
    error: *mut *mut HisdfError,
    body: impl FnOnce() -> Result<(), Failure>,
) -> HisdfStatus {
    quiet_panics();
    // Calls nest (a progress callback may call back in): restore, not clear.
    let outer = IN_BOUNDARY.with(|b| b.replace(true));
    CALLS_RUNNING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let outcome = catch_panic(|| {
        // Before any work, inside the catch: a host that links a BLAS of
        // its own (Debian's Blender) would otherwise take libtorch's matrix
        // products (issue 22).
        libtorch_blas::keep_own_blas();
        body()
    });
    CALLS_RUNNING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    IN_BOUNDARY.with(|b| b.set(outer));
    let outcome = outcome.unwrap_or_else(|panic| Err(panic_failure(panic)));
    match outcome {
        Ok(()) => HisdfStatus::Ok,
        Err(Failure(status, message)) => {
            log::debug!("{}: {message}", status_str(status));
            if !error.is_null() {
                let message =
                    std::ffi::CString::new(message.replace('\0', " ")).unwrap_or_default();
                let boxed = Box::new(HisdfError {
                    tag: HisdfError::TAG,
                    status,
                    message,
                });
                unsafe { *error = Box::into_raw(boxed) };
            }
            status
        }
    }
}

/// The boundary of the `*_free` functions, which return nothing: a panic
/// while dropping (our bug) is logged as any call's is, never printed on
/// the host's stderr nor unwound into C.
fn release(free: impl FnOnce()) {
    let _ = boundary(std::ptr::null_mut(), || {
        free();
        Ok(())
    });
}

fn status_str(status: HisdfStatus) -> &'static str {
    unsafe { CStr::from_ptr(hisdf_status_name(status as u32)) }
        .to_str()
        .unwrap_or("HISDF_STATUS_UNKNOWN")
}

fn str_arg<'a>(s: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if s.is_null() {
        return Err(Failure::null(what));
    }
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8; pass UTF-8 text")))
}

fn path_arg(path: *const c_char) -> Result<PathBuf, Failure> {
    Ok(PathBuf::from(str_arg(path, "path")?))
}

/// Checks an output pointer before any work is done, so that a NULL output
/// fails fast instead of after a long training.
fn out_arg<T>(out: *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        Err(Failure::null(what))
    } else {
        Ok(())
    }
}

/// Refuses a length above `HISDF_MAX_BUFFER_LEN` (a caller's lie or a
/// negative number cast to size_t), before the buffer is touched.
fn len_arg(len: usize, what: &str) -> Result<(), Failure> {
    if len > HISDF_MAX_BUFFER_LEN {
        Err(Failure::invalid(format!(
            "{what} length {len} exceeds the maximum {HISDF_MAX_BUFFER_LEN} elements (a length computed from a negative number?)"
        )))
    } else {
        Ok(())
    }
}

/// Refuses a NULL buffer that claims elements, before lengths are compared
/// (so a NULL is reported as NULL whatever the lengths say).
fn nonnull_arg<T>(ptr: *const T, len: usize, what: &str) -> Result<(), Failure> {
    if ptr.is_null() && len > 0 {
        Err(Failure::null(what))
    } else {
        Ok(())
    }
}

/// A caller's buffer of `len` elements as a slice; NULL is refused unless
/// `len` is 0 (what an empty C++ vector's `data()` gives).
fn slice_arg<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T], Failure> {
    len_arg(len, what)?;
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

fn slice_out<'a, T>(ptr: *mut T, len: usize, what: &str) -> Result<&'a mut [T], Failure> {
    len_arg(len, what)?;
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Checks a flat xyz buffer's length against its output's before either is
/// read: `points_len` a multiple of 3 and within the maximum, and
/// `out_len` exactly `per_point` elements per point.
fn point_lengths(
    points_len: usize,
    out_what: &str,
    out_len: usize,
    per_point: usize,
) -> Result<(), Failure> {
    let points = point_count(points_len, "points")?;
    expect_len(out_what, out_len, points * per_point)
}

/// How many points `len` flat xyz floats hold: within the maximum and a
/// multiple of 3, or refused.
fn point_count(len: usize, what: &str) -> Result<usize, Failure> {
    len_arg(len, what)?;
    if len % 3 != 0 {
        return Err(Failure::invalid(format!(
            "{what} holds {len} floats, not a multiple of 3 (x, y, z per point)"
        )));
    }
    Ok(len / 3)
}

/// Flat xyz floats as points; the length must be a multiple of 3 and every
/// coordinate finite.
fn points_arg(ptr: *const f32, len: usize, what: &str) -> Result<Vec<[f32; 3]>, Failure> {
    point_count(len, what)?;
    let flat = slice_arg(ptr, len, what)?;
    // The copy, and the values or mesh made from it, are ours to allocate:
    // refused when they cannot fit rather than aborting the host.
    crate::util::memory::ensure(
        len as u64 * 8,
        || format!("a copy of {what} ({} points)", len / 3),
        "pass the points in smaller chunks",
    )?;
    if let Some(k) = flat.iter().position(|v| !v.is_finite()) {
        return Err(Failure::invalid(format!(
            "{what}: point {} has a NaN or infinite coordinate ({})",
            k / 3,
            flat[k]
        )));
    }
    Ok(flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
}

/// Bytes from the library: where they start and how many (valid until
/// `hisdf_bytes_free`).
#[no_mangle]
pub extern "C" fn hisdf_bytes_data(
    bytes: *const HisdfBytes,
    data: *mut *const u8,
    len: *mut usize,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        let b = HisdfBytes::get(bytes)?;
        out_arg(data, "data")?;
        out_arg(len, "len")?;
        unsafe {
            *data = b.as_ptr();
            *len = b.len();
        }
        Ok(())
    })
}

/// Frees bytes; NULL is ignored.
#[no_mangle]
pub extern "C" fn hisdf_bytes_free(bytes: *mut HisdfBytes) {
    release(|| HisdfBytes::free(bytes));
}

/// A frame's centre and scale to the caller: a point p of the caller's maps
/// to (p - centre) * scale in the unit-sphere frame.
fn normalisation_out(
    n: crate::mesh::Normalisation,
    centre: *mut f64,
    centre_len: usize,
    scale: *mut f64,
) -> Result<(), Failure> {
    out_arg(scale, "scale")?;
    nonnull_arg(centre, centre_len, "centre")?;
    expect_len("centre", centre_len, 3)?;
    let c = slice_out(centre, centre_len, "centre")?;
    c.copy_from_slice(&n.centre);
    unsafe { *scale = n.scale };
    Ok(())
}

fn expect_len(what: &str, got: usize, want: usize) -> Result<(), Failure> {
    if got == want {
        Ok(())
    } else {
        Err(Failure::invalid(format!(
            "{what} holds {got} elements; this call needs exactly {want}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caught panic's status: out of memory for a failed allocation,
    /// Panic for anything else (util's test checks the messages).
    #[test]
    fn caught_panics_are_classified() {
        let oom = CaughtPanic::from_text("DefaultCPUAllocator: can't allocate memory");
        assert_eq!(panic_failure(oom).0, HisdfStatus::OutOfMemory);
        let bug = CaughtPanic::from_text("index out of bounds");
        let Failure(status, message) = panic_failure(bug);
        assert_eq!(status, HisdfStatus::Panic);
        assert!(message.contains("please report"), "{message}");
    }

    /// A panic on one of rayon's workers during a call (where the call's
    /// parallel work runs) is logged, not printed on the host's stderr, and
    /// still comes back as a status. The default hook prints to the real
    /// stderr even under the test harness, so the check runs this test
    /// again in a child process and reads what it printed.
    #[test]
    fn worker_thread_panics_stay_off_stderr() {
        const NAME: &str = "ffi::tests::worker_thread_panics_stay_off_stderr";
        if std::env::var_os("HISDF_WORKER_PANIC_CHILD").is_some() {
            use rayon::prelude::*;
            let status = boundary(std::ptr::null_mut(), || {
                (0..64).into_par_iter().for_each(|i| {
                    if i % 2 == 0 {
                        panic!("planted worker panic {i}");
                    }
                });
                Ok(())
            });
            assert_eq!(status, HisdfStatus::Panic);
            // Outside a call, a panic on a worker is the host's: printed.
            let outside = std::panic::catch_unwind(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap()
                    .install(|| panic!("host's own panic"))
            });
            assert!(outside.is_err());
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("HISDF_WORKER_PANIC_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{stderr}");
        assert!(!stderr.contains("planted worker panic"), "{stderr}");
        assert!(stderr.contains("host's own panic"), "{stderr}");
    }

    /// Lengths are checked before any buffer is read: a lying length with a
    /// NULL pointer is refused for the length, not dereferenced.
    #[test]
    fn lengths_are_checked_before_buffers() {
        let err = slice_arg::<f32>(std::ptr::null(), usize::MAX, "points").unwrap_err();
        assert_eq!(err.0, HisdfStatus::InvalidArgument);
        assert!(err.1.contains("exceeds the maximum"), "{}", err.1);
        assert!(slice_arg::<f32>(std::ptr::null(), 0, "points")
            .unwrap()
            .is_empty());
        let err = point_lengths(usize::MAX, "values", 2, 1).unwrap_err();
        assert_eq!(err.0, HisdfStatus::InvalidArgument);
        point_lengths(9, "values", 3, 1).unwrap();
        point_lengths(9, "gradients", 9, 3).unwrap();
        assert!(point_lengths(9, "values", 2, 1).is_err());
        assert!(point_lengths(10, "values", 3, 1).is_err());
    }
}
