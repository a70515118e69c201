//! Small pieces every stage shares.

pub mod libtorch_blas;

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` so that `path` either keeps its old content or
/// holds the complete new one: the data goes to a temporary file in the same
/// folder (same file system, so the rename is atomic) and is renamed over the
/// target only after a successful flush. A failed write never destroys what
/// the user already had there.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically_with(path, |w| w.write_all(bytes))
}

/// The folder a file path is in: its parent, or "." for a bare file name.
pub fn folder_of(path: &Path) -> std::path::PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

/// Checks, before any long work, that [`write_atomically`] will be able to
/// write `path`: it is not a folder, its folder exists (made here, as
/// `mkdir -p` would, when missing) and is a folder, and a file can be made
/// in it. Nothing the user owns is created, truncated or removed: the
/// probe is a temporary name of our own beside it. Every front end calls
/// this for every output a command will write, so that a path that cannot
/// be written fails at once, not after the training.
///
/// Permission bits do not stop root; a read-only file system or a path
/// through a regular file stops anyone, and is caught here.
pub fn check_output_path(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "{}: is a folder; give a file name in it",
            path.display()
        ));
    }
    if path.file_name().is_none() {
        return Err(format!("{}: has no file name", path.display()));
    }
    let dir = folder_of(path);
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "{}: exists and is not a folder; choose another output path",
            dir.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "{}: cannot create the output folder ({e}); create it or choose another path",
            dir.display()
        )
    })?;
    // The same kind of name write_atomically uses, so a folder that admits
    // one admits the other.
    let probe = dir.join(format!(".hisdf-write-test-{}.tmp", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "{}: cannot write in this folder ({e}); choose a writable output path",
            dir.display()
        )),
    }
}

/// As [`write_atomically`], for writers that stream their output.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = folder_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("output path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A panic caught at a boundary the library promises to hold (the C API,
/// each shape of a batch): what it said, and whether it was a failed
/// allocation, which is the caller's too-large request or a full device
/// rather than our bug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaughtPanic {
    pub out_of_memory: bool,
    /// The panic's first line; for libtorch's errors, its message without
    /// the C++ backtrace.
    pub first_line: String,
}

impl CaughtPanic {
    pub fn from_payload(payload: &(dyn std::any::Any + Send)) -> CaughtPanic {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        CaughtPanic::from_text(&what)
    }

    pub fn from_text(what: &str) -> CaughtPanic {
        // tch's panics carry libtorch's message (and its C++ backtrace, with
        // escaped newlines) inside `Torch("...")`: keep the message's first
        // line.
        let inner = what.split_once("Torch(\"").map_or(what, |(_, t)| t);
        let first_line = inner
            .split("\\n")
            .next()
            .and_then(|l| l.lines().next())
            .unwrap_or("")
            .trim_end_matches("\")")
            .to_string();
        let out_of_memory = [
            "out of memory",
            "can't allocate memory",
            "capacity overflow",
        ]
        .iter()
        .any(|m| what.contains(m));
        CaughtPanic {
            out_of_memory,
            first_line,
        }
    }

    /// The message for the user: what to do about a failed allocation, or
    /// a request to report anything else.
    pub fn message(&self) -> String {
        if self.out_of_memory {
            format!(
                "out of memory: {}; use smaller sizes (batch_size, samples, width), or the CPU for a network the GPU cannot hold",
                self.first_line
            )
        } else {
            format!("internal error (please report): {}", self.first_line)
        }
    }
}

/// Runs `f`, turning a panic into a [`CaughtPanic`].
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, CaughtPanic> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|payload| CaughtPanic::from_payload(payload.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed libtorch allocation (as tch's panic carries it) is the
    /// caller's size, with libtorch's first line and no C++ backtrace; any
    /// other panic is ours.
    #[test]
    fn caught_panics_are_classified() {
        let tch = "called `Result::unwrap()` on an `Err` value: Torch(\"[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 549755813888 bytes.\\nframe #0: c10::ThrowEnforceNotMet\\nframe #1: ...\")";
        let p = CaughtPanic::from_text(tch);
        assert!(p.out_of_memory);
        let message = p.message();
        assert!(
            message.contains("you tried to allocate 549755813888 bytes")
                && !message.contains("frame #")
                && message.contains("smaller"),
            "{message}"
        );
        let p = catch_panic(|| -> () { panic!("index out of bounds") }).unwrap_err();
        assert!(!p.out_of_memory);
        assert_eq!(p.first_line, "index out of bounds");
        assert!(p.message().contains("please report"), "{}", p.message());
        let formatted = catch_panic(|| -> () { panic!("{} of {}", 3, 4) }).unwrap_err();
        assert_eq!(formatted.first_line, "3 of 4");
        assert_eq!(catch_panic(|| 7), Ok(7));
    }

    /// Paths no one can write are refused without touching what is there:
    /// a file in the way of the folder, an output that is a folder; a
    /// missing folder is made; a read-only folder is refused where the
    /// permission bits bind (not as root, which they do not stop).
    #[test]
    fn unwritable_output_paths_are_refused_and_nothing_is_touched() {
        let dir = std::env::temp_dir().join(format!("hisdf-util-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let notes = dir.join("notes.txt");
        std::fs::write(&notes, b"the user's").unwrap();
        let err = check_output_path(&notes.join("model.safetensors")).unwrap_err();
        assert!(err.contains("is not a folder"), "{err}");
        let err = check_output_path(&dir).unwrap_err();
        assert!(err.contains("is a folder"), "{err}");
        // An existing output is neither truncated nor removed.
        check_output_path(&notes).unwrap();
        assert_eq!(std::fs::read(&notes).unwrap(), b"the user's");
        check_output_path(&dir.join("new/deeper/out.obj")).unwrap();
        assert!(dir.join("new/deeper").is_dir());
        assert_eq!(
            std::fs::read_dir(dir.join("new/deeper")).unwrap().count(),
            0
        );

        use std::os::unix::fs::PermissionsExt;
        let locked = dir.join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        let binds = std::fs::File::create(locked.join("x")).is_err();
        if binds {
            let err = check_output_path(&locked.join("out.obj")).unwrap_err();
            assert!(err.contains("cannot write in this folder"), "{err}");
        } else {
            println!("skipped the read-only folder: permission bits do not bind this user (root)");
        }
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = std::env::temp_dir().join(format!("hisdf-util-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("keep.txt");
        std::fs::write(&target, b"old").unwrap();
        let err = write_atomically_with(&target, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "temporary file left behind");
        write_atomically(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
