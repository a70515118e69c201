//! Logs of the library, delivered to the host. Everything in hisdf logs
//! through the `log` facade; a C host receives the records through one
//! callback instead of them going to stderr, where a GUI host (Blender)
//! never shows them.

use std::ffi::{c_char, c_void, CString};
use std::sync::RwLock;

use super::{boundary, HisdfError, HisdfStatus};

/// Severity of a log record, and the most verbose level a host wants.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HisdfLogLevel {
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// Receives one log record: `target` is the module that logged (e.g.
/// "hisdf::train"), `message` the text; both are valid only during the
/// call. May be called from any thread, including library worker threads,
/// and concurrently: the callback must be thread-safe, and must not call
/// `hisdf_set_log_callback`.
pub type HisdfLogCallback = Option<
    extern "C" fn(
        user_data: *mut c_void,
        level: HisdfLogLevel,
        target: *const c_char,
        message: *const c_char,
    ),
>;

struct Sink {
    callback: extern "C" fn(*mut c_void, HisdfLogLevel, *const c_char, *const c_char),
    /// The host's pointer, kept as an address: the host vouched for its use
    /// from any thread when it registered a callback.
    user_data: usize,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

struct HostLogger;

static HOST_LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Ok(sink) = SINK.read() else { return };
        let Some(sink) = sink.as_ref() else { return };
        let level = match record.level() {
            log::Level::Error => HisdfLogLevel::Error,
            log::Level::Warn => HisdfLogLevel::Warn,
            log::Level::Info => HisdfLogLevel::Info,
            log::Level::Debug => HisdfLogLevel::Debug,
            log::Level::Trace => HisdfLogLevel::Trace,
        };
        let text = |s: String| CString::new(s.replace('\0', " ")).unwrap_or_default();
        let target = text(record.target().to_string());
        let message = text(record.args().to_string());
        (sink.callback)(
            sink.user_data as *mut c_void,
            level,
            target.as_ptr(),
            message.as_ptr(),
        );
    }

    fn flush(&self) {}
}

fn level_filter(level: u32) -> log::LevelFilter {
    match level {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// Routes the library's log records of `level` (a `HisdfLogLevel`; taken
/// as an integer so that any value is safe) and more severe to
/// `callback` (with `user_data` passed back unchanged). A NULL callback or
/// `HISDF_LOG_LEVEL_OFF` stops delivery. Replaces any earlier callback.
/// Returns `HISDF_STATUS_UNAVAILABLE` when the process already has another
/// logger for Rust's `log` facade (a Rust host with its own logger).
#[no_mangle]
pub extern "C" fn hisdf_set_log_callback(
    callback: HisdfLogCallback,
    user_data: *mut c_void,
    level: u32,
    error: *mut *mut HisdfError,
) -> HisdfStatus {
    boundary(error, || {
        // Installed once per process; whether we won is remembered, since
        // `log` cannot tell us later whose logger is in place.
        static OWNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let installed = *OWNED.get_or_init(|| log::set_logger(&HOST_LOGGER).is_ok());
        if !installed {
            return Err(super::Failure(
                HisdfStatus::Unavailable,
                "another logger already owns the log facade in this process".into(),
            ));
        }
        let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
        match callback {
            Some(callback) => {
                *sink = Some(Sink {
                    callback,
                    user_data: user_data as usize,
                });
                log::set_max_level(level_filter(level));
            }
            None => {
                *sink = None;
                log::set_max_level(log::LevelFilter::Off);
            }
        }
        Ok(())
    })
}
