//! Splitting a batch: shards of the sorted list, the shard of a Slurm
//! job-array task, and one worker process per GPU.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::table::{merge, MergeArgs};
use crate::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || format!("shard {s:?}: expected K/N with 0 <= K < N, e.g. 0/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// The shard of a task of a Slurm job array, and where it came from (for
/// the log); `None` outside a job array. `var` reads one environment
/// variable: the process environment in `run`, a table in the tests.
///
/// Task `SLURM_ARRAY_TASK_ID` of an array of `SLURM_ARRAY_TASK_COUNT` tasks
/// numbered from `SLURM_ARRAY_TASK_MIN` does shard ID - MIN of COUNT, so
/// `--array=0-15` and `--array=1-16` both split the list into 16. Only a
/// contiguous array gives every shard to exactly one task: a stepped array
/// (`--array=0-15:2`) or a list with gaps (`--array=1,3,8`) would leave
/// shapes to no task or to two, and is refused rather than guessed at.
/// A throttle (`--array=0-15%4`) changes nothing here.
pub(super) fn slurm_shard(var: impl Fn(&str) -> Option<String>) -> Result<Option<(Shard, String)>> {
    let Some(id) = var("SLURM_ARRAY_TASK_ID") else {
        return Ok(None);
    };
    let advice =
        "submit the array as --array=0-<N-1> (scripts/slurm-batch does) or pass --shard K/N";
    let number = |name: &str| -> Result<Option<usize>> {
        match var(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}={v:?} from Slurm is not a task number; {advice}")),
        }
    };
    let id = number("SLURM_ARRAY_TASK_ID")?.ok_or_else(|| {
        format!("SLURM_ARRAY_TASK_ID={id:?} from Slurm is not a task number; {advice}")
    })?;
    let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
        format!(
            "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (a Slurm older \
             than 17.11?), so the number of shards is unknown; pass --shard {id}/N"
        )
    })?;
    let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
    if let Some(step) = number("SLURM_ARRAY_TASK_STEP")?.filter(|&s| s != 1) {
        return Err(format!(
            "this job array has a step of {step} (--array=MIN-MAX:{step}), so its task ids do \
             not number the shards 0..{count}; {advice}"
        ));
    }
    if let Some(max) = number("SLURM_ARRAY_TASK_MAX")? {
        if max < min || max - min + 1 != count {
            return Err(format!(
                "this job array's {count} tasks are not numbered {min}-{} without gaps (they \
                 run from {min} to {max}), so they do not give every shard to one task; {advice}",
                min + count.saturating_sub(1)
            ));
        }
    }
    if count == 0 || id < min || id - min >= count {
        return Err(format!(
            "SLURM_ARRAY_TASK_ID={id} is not one of {count} tasks from SLURM_ARRAY_TASK_MIN={min}; \
             {advice}"
        ));
    }
    let job = var("SLURM_ARRAY_JOB_ID").map_or(String::new(), |j| format!(" {j}"));
    let origin = format!(
        "Slurm job array{job} (task {id} of {min}-{})",
        min + count - 1
    );
    Ok(Some((
        Shard {
            index: id - min,
            count,
        },
        origin,
    )))
}

/// Splits this run's shapes over `workers` processes of this same command,
/// one GPU each: worker g does shard K + N g of N workers (K/N this run's own
/// shard, 0/1 without one), so the shapes are split exactly as a job array
/// of N workers tasks would split them, and every worker keeps all of the
/// batch's guarantees (records, resume, atomic tables). Without a shard of
/// its own, the run then merges the workers' tables into `results.*`; a
/// shard leaves that to the job's `batch-merge`.
pub(super) fn run_workers(out: &Path, shard: Option<Shard>, workers: usize) -> Result<()> {
    let own = shard.unwrap_or(Shard { index: 0, count: 1 });
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program ({e})"))?;
    let args = worker_args(std::env::args_os().skip(1));
    // Slurm (and users) name a node's GPUs in CUDA_VISIBLE_DEVICES; each
    // worker sees one of them as its device 0.
    let devices: Vec<String> = match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|d| d.trim().to_string()).collect(),
        _ => (0..workers).map(|g| g.to_string()).collect(),
    };
    let device_of: Vec<&str> = (0..workers)
        .map(|g| devices[g % devices.len()].as_str())
        .collect();
    eprintln!(
        "batch: {workers} workers, one per GPU (CUDA_VISIBLE_DEVICES {})",
        device_of.join(", ")
    );
    let mut children = Vec::with_capacity(workers);
    for (g, device) in device_of.iter().enumerate() {
        let mine = Shard {
            index: own.index + own.count * g,
            count: own.count * workers,
        };
        let mut command = std::process::Command::new(&exe);
        command
            .args(&args)
            .arg("--shard")
            .arg(format!("{}/{}", mine.index, mine.count))
            .arg("--gpus")
            .arg("1")
            .env("CUDA_VISIBLE_DEVICES", device)
            // The worker's shard is given; without a task id it does not
            // look for (or remark on) the job array's.
            .env_remove("SLURM_ARRAY_TASK_ID");
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start worker {g} ({e})"))?;
        children.push((mine, child));
    }
    let mut stopped = Vec::new();
    let mut with_failures = 0;
    for (mine, mut child) in children {
        match child.wait() {
            Ok(status) if status.success() => {}
            // Exit status 1 is a worker with a failed shape: its table
            // says which. Anything else stopped the worker early.
            Ok(status) if status.code() == Some(1) => with_failures += 1,
            Ok(status) => stopped.push(format!("shard {}/{}: {status}", mine.index, mine.count)),
            Err(e) => stopped.push(format!("shard {}/{}: {e}", mine.index, mine.count)),
        }
    }
    if !stopped.is_empty() {
        eprintln!("batch: workers stopped early: {}", stopped.join("; "));
    }
    if shard.is_none() {
        merge(MergeArgs {
            folder: out.to_path_buf(),
        })?;
    }
    match shard {
        _ if with_failures > 0 && stopped.is_empty() => Err(format!(
            "shapes failed in {with_failures} of the {workers} workers; their errors are in the tables in {}",
            out.display()
        )),
        None => Ok(()),
        Some(_) if stopped.is_empty() => Ok(()),
        Some(k) => Err(format!(
            "shard {}/{}: {} workers stopped early; run the same command again to finish their shapes",
            k.index,
            k.count,
            stopped.len()
        )),
    }
}

/// This command's arguments for a worker: all but `--shard` and `--gpus`,
/// which the worker is given.
fn worker_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--shard" || text == "--gpus" {
            skip_value = true;
        } else if !(text.starts_with("--shard=") || text.starts_with("--gpus=")) {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::AutoCount;
    use super::*;
    #[test]
    fn workers_get_every_argument_but_their_shard_and_gpus() {
        let args = [
            "batch",
            "list.txt",
            "-o",
            "out",
            "--shard",
            "1/2",
            "--gpus=4",
            "--pack",
            "8",
            "--gpus",
            "2",
            "--shard=0/3",
            "--sparse",
        ]
        .map(std::ffi::OsString::from);
        let kept = worker_args(args.into_iter());
        assert_eq!(
            kept,
            ["batch", "list.txt", "-o", "out", "--pack", "8", "--sparse"]
                .map(std::ffi::OsString::from)
        );
        assert_eq!("auto".parse(), Ok(AutoCount::Auto));
        assert_eq!("3".parse(), Ok(AutoCount::Count(3)));
        assert!("0".parse::<AutoCount>().is_err());
    }

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        for bad in ["4/4", "0/0", "1", "a/b", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    fn slurm(vars: &[(&str, &str)]) -> Result<Option<(Shard, String)>> {
        slurm_shard(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn array(
        id: &str,
        min: &str,
        max: &str,
        count: &str,
        step: &str,
    ) -> Vec<(&'static str, String)> {
        [
            ("SLURM_ARRAY_JOB_ID", "77"),
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", min),
            ("SLURM_ARRAY_TASK_MAX", max),
            ("SLURM_ARRAY_TASK_COUNT", count),
            ("SLURM_ARRAY_TASK_STEP", step),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }

    fn slurm_array(
        id: &str,
        min: &str,
        max: &str,
        count: &str,
        step: &str,
    ) -> Result<Option<Shard>> {
        let vars = array(id, min, max, count, step);
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        slurm(&refs).map(|o| o.map(|(k, _)| k))
    }

    #[test]
    fn slurm_arrays_give_the_shard() {
        // Outside an array (a plain job included) there is no shard.
        assert_eq!(slurm(&[]).unwrap(), None);
        assert_eq!(slurm(&[("SLURM_JOB_ID", "5")]).unwrap(), None);
        // The values of `sbatch --array=0-3`, task 2, as Slurm 22.05 sets them.
        let (k, origin) = slurm(&[
            ("SLURM_ARRAY_JOB_ID", "77"),
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(k, Shard { index: 2, count: 4 });
        assert_eq!(origin, "Slurm job array 77 (task 2 of 0-3)");
        // An array from 1 numbers its shards from 0 all the same.
        for (id, index) in [("1", 0), ("16", 15)] {
            assert_eq!(
                slurm_array(id, "1", "16", "16", "1").unwrap(),
                Some(Shard { index, count: 16 })
            );
        }
        // MIN, MAX and STEP are optional; COUNT is not.
        assert_eq!(
            slurm(&[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_COUNT", "4")
            ])
            .unwrap()
            .map(|(k, _)| k),
            Some(Shard { index: 3, count: 4 })
        );
        let e = slurm(&[("SLURM_ARRAY_TASK_ID", "3")]).unwrap_err();
        assert!(
            e.contains("SLURM_ARRAY_TASK_COUNT") && e.contains("--shard 3/N"),
            "{e}"
        );
    }

    #[test]
    fn slurm_arrays_that_do_not_split_the_list_are_refused() {
        // --array=0-15:2 (task 14) and --array=3,5,9 (task 5), with the
        // values Slurm 22.05 sets for them.
        let stepped = slurm_array("14", "0", "14", "8", "2").unwrap_err();
        assert!(
            stepped.contains("step of 2") && stepped.contains("--shard"),
            "{stepped}"
        );
        let gaps = slurm_array("5", "3", "9", "3", "1").unwrap_err();
        assert!(
            gaps.contains("without gaps") && gaps.contains("--array=0-<N-1>"),
            "{gaps}"
        );
        for (id, min, max, count) in [
            ("9", "0", "3", "4"),
            ("0", "1", "4", "4"),
            ("x", "0", "3", "4"),
        ] {
            let e = slurm_array(id, min, max, count, "1").unwrap_err();
            assert!(e.contains("SLURM_ARRAY_TASK_ID"), "{id}: {e}");
        }
        let e = slurm_array("0", "0", "3", "four", "1").unwrap_err();
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT=\"four\""), "{e}");
    }
}
