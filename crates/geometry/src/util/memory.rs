//! How much memory this process may still take, asked before a stage makes
//! a buffer whose size the caller chose.
//!
//! Rust aborts the process when an allocation fails, and on Linux a large
//! allocation that exceeds the machine's memory often does not fail at all:
//! the kernel kills the process later, when the pages are touched. Neither
//! may happen to a host (Blender, a C tool, a Slurm job with `--mem`). So a
//! stage that is about to allocate in proportion to a setting (sample
//! counts, metric points, a dense grid) first compares its estimate with
//! the tightest of the limits that apply and refuses with
//! [`MemoryShortfall`], a message that names the setting to lower.
//!
//! The limits read: the machine's available memory and free swap
//! (`/proc/meminfo`), the process's memory control group (v2 `memory.max`,
//! v1 `memory.limit_in_bytes`, as Slurm, Docker and systemd set them) and
//! its address-space limit (`ulimit -v`). Where none can be read (another
//! system), nothing is refused here.

use std::path::{Path, PathBuf};

/// Room left under the tightest limit, and which limit that is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headroom {
    pub bytes: u64,
    pub limit: &'static str,
}

/// A stage's request that does not fit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} needs about {} of memory, but this process can take only about {} more ({limit}); {remedy}",
    size(*needed),
    size(*available)
)]
pub struct MemoryShortfall {
    pub what: String,
    pub needed: u64,
    pub available: u64,
    pub limit: &'static str,
    pub remedy: String,
}

/// Requests below this are allowed without reading any limit. A check
/// reads five files under /proc and /sys (tens of microseconds), which
/// would dominate a small query through the C API; and a request of a few
/// megabytes is within the library's own unchecked working memory (a
/// network, a batch of activations), so refusing it would protect nothing.
pub const CHECKED_FROM: u64 = 32 << 20;

/// Refuses `needed` bytes for `what` when they do not fit under the
/// tightest limit; `remedy` says which setting to lower. `what` is built
/// only for a refusal, so a check that passes costs no formatting.
pub fn ensure(
    needed: u64,
    what: impl FnOnce() -> String,
    remedy: &str,
) -> Result<(), MemoryShortfall> {
    if needed < CHECKED_FROM {
        return Ok(());
    }
    ensure_within(headroom(), needed, what, remedy)
}

/// [`ensure`] against a given headroom (`None`: unknown, so allowed).
pub fn ensure_within(
    room: Option<Headroom>,
    needed: u64,
    what: impl FnOnce() -> String,
    remedy: &str,
) -> Result<(), MemoryShortfall> {
    match room {
        Some(room) if needed > room.bytes => Err(MemoryShortfall {
            what: what(),
            needed,
            available: room.bytes,
            limit: room.limit,
            remedy: remedy.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The tightest of the limits that can be read now.
pub fn headroom() -> Option<Headroom> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let machine = read("/proc/meminfo")
        .and_then(|t| machine_headroom(&t))
        .map(|bytes| Headroom {
            bytes,
            limit: "the machine's available memory and swap",
        });
    let group =
        read("/proc/self/cgroup").and_then(|t| cgroup_headroom(&t, Path::new("/sys/fs/cgroup")));
    let address = match (read("/proc/self/limits"), read("/proc/self/status")) {
        (Some(l), Some(s)) => address_space_headroom(&l, &s).map(|bytes| Headroom {
            bytes,
            limit: "the address-space limit, ulimit -v",
        }),
        _ => None,
    };
    [machine, group, address]
        .into_iter()
        .flatten()
        .min_by_key(|h| h.bytes)
}

/// `MemAvailable` plus `SwapFree`, in bytes.
fn machine_headroom(meminfo: &str) -> Option<u64> {
    let field = |name: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kb * 1024)
        })
    };
    Some(field("MemAvailable")? + field("SwapFree").unwrap_or(0))
}

/// The room under this process's memory control group and every group
/// above it: the limit less the usage, the usage's reclaimable file cache
/// counted as room. `cgroup` is `/proc/self/cgroup`, `root` the cgroup
/// mount (a parameter so the tests can build a tree).
fn cgroup_headroom(cgroup: &str, root: &Path) -> Option<Headroom> {
    let mut best: Option<u64> = None;
    let mut consider = |dir: PathBuf, max: &str, current: &str, cache: &str| {
        let mut dir = Some(dir.as_path());
        while let Some(d) = dir {
            if !d.starts_with(root) {
                break;
            }
            let limit = read_number(&d.join(max));
            let usage = read_number(&d.join(current));
            if let (Some(limit), Some(usage)) = (limit, usage) {
                let reclaimable = std::fs::read_to_string(d.join("memory.stat"))
                    .ok()
                    .and_then(|s| stat_field(&s, cache))
                    .unwrap_or(0);
                let room = limit.saturating_sub(usage.saturating_sub(reclaimable));
                best = Some(best.map_or(room, |b| b.min(room)));
            }
            dir = d.parent();
        }
    };
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if id == "0" && controllers.is_empty() {
            consider(
                root.join(relative),
                "memory.max",
                "memory.current",
                "inactive_file",
            );
        } else if controllers.split(',').any(|c| c == "memory") {
            consider(
                root.join("memory").join(relative),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            );
        }
    }
    best.map(|bytes| Headroom {
        bytes,
        limit: "the memory limit of this process's control group (a Slurm --mem, a container)",
    })
}

/// A cgroup file's number; `max` (v2's "no limit") and v1's huge
/// no-limit value read as none.
fn read_number(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let n: u64 = text.trim().parse().ok()?;
    (n < 1 << 60).then_some(n)
}

fn stat_field(stat: &str, name: &str) -> Option<u64> {
    stat.lines().find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// The soft `Max address space` of `/proc/self/limits` less `VmSize` of
/// `/proc/self/status`.
fn address_space_headroom(limits: &str, status: &str) -> Option<u64> {
    let limit: u64 = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max address space"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let size_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(limit.saturating_sub(size_kb * 1024))
}

/// Bytes for a message: "3.2 GB", "512 MB".
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.0} MB", (b / 1e6).max(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_counts_available_memory_and_free_swap() {
        let text = "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable:     400 kB\nSwapTotal: 0 kB\nSwapFree:  100 kB\n";
        assert_eq!(machine_headroom(text), Some(500 * 1024));
        assert_eq!(machine_headroom("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn the_address_space_limit_counts_what_is_already_mapped() {
        let limits = "Limit  Soft Limit  Hard Limit  Units\nMax address space         4294967296           unlimited            bytes\n";
        let status = "Name: x\nVmSize:\t 1048576 kB\n";
        assert_eq!(address_space_headroom(limits, status), Some(3 << 30));
        let unlimited =
            "Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_space_headroom(unlimited, status), None);
    }

    #[test]
    fn control_groups_v1_and_v2_and_their_parents_limit_the_room() {
        let root = std::env::temp_dir().join(format!("hisdf-cgroup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // v2: the job's group allows 3000 with 1000 used of which 200 is
        // cache; its parent allows 2500 with 1500 used.
        let job = root.join("slurm/job_1");
        std::fs::create_dir_all(&job).unwrap();
        std::fs::write(job.join("memory.max"), "3000\n").unwrap();
        std::fs::write(job.join("memory.current"), "1000\n").unwrap();
        std::fs::write(job.join("memory.stat"), "anon 800\ninactive_file 200\n").unwrap();
        std::fs::write(root.join("slurm/memory.max"), "2500\n").unwrap();
        std::fs::write(root.join("slurm/memory.current"), "1500\n").unwrap();
        let room = cgroup_headroom("0::/slurm/job_1\n", &root).unwrap();
        assert_eq!(room.bytes, 1000, "the parent's 2500 - 1500 is the tighter");
        // No limit anywhere: no room to report.
        std::fs::write(job.join("memory.max"), "max\n").unwrap();
        std::fs::write(root.join("slurm/memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_headroom("0::/slurm/job_1\n", &root), None);
        // v1: the memory controller's own tree.
        let v1 = root.join("memory/docker/abc");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("memory.limit_in_bytes"), "4096\n").unwrap();
        std::fs::write(v1.join("memory.usage_in_bytes"), "1096\n").unwrap();
        let room = cgroup_headroom("4:memory:/docker/abc\n0::/\n", &root).unwrap();
        assert_eq!(room.bytes, 3000);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_request_over_the_room_is_refused_with_the_remedy() {
        let room = Some(Headroom {
            bytes: 2_000_000_000,
            limit: "a test limit",
        });
        assert!(ensure_within(room.clone(), 1_000_000_000, || "x".into(), "y").is_ok());
        let e = ensure_within(
            room,
            3_200_000_000,
            || "sampling 100,000,000 samples".into(),
            "lower surface_samples",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("3.2 GB") && msg.contains("2.0 GB"), "{msg}");
        assert!(
            msg.contains("a test limit") && msg.ends_with("lower surface_samples"),
            "{msg}"
        );
        assert!(
            ensure_within(None, u64::MAX, || "x".into(), "y").is_ok(),
            "unknown room refuses nothing"
        );
    }

    #[test]
    fn a_small_request_reads_no_limit_and_builds_no_message() {
        // Below the floor even an absurd room is not consulted: the
        // description is never built.
        let built = std::cell::Cell::new(false);
        let what = || {
            built.set(true);
            String::from("x")
        };
        assert!(ensure(CHECKED_FROM - 1, what, "y").is_ok());
        assert!(!built.get());
        // At the floor the check runs: u64::MAX bytes never fit where a
        // limit can be read.
        if cfg!(target_os = "linux") {
            let e = ensure(u64::MAX, || String::from("everything"), "y").unwrap_err();
            assert!(e.to_string().starts_with("everything needs"), "{e}");
        }
    }

    #[test]
    fn this_machine_reports_some_room() {
        // Linux (CI) always has /proc/meminfo.
        if cfg!(target_os = "linux") {
            let room = headroom().expect("a limit on Linux");
            assert!(room.bytes > 0);
        }
    }
}
