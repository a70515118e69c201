//! `hisdf`: the command-line tool users run. It links only hisdf-geometry,
//! never libtorch, so the commands that need no network (info, sdf,
//! sample, render, eval without --model, --help, --version) start at once
//! (bench/cli_start.sh). Every other command, and `eval --model`, it hands
//! to `hisdf-torch` beside it by exec with the same arguments: the process
//! stays the same one, so stdin, stdout, stderr, signals (Ctrl-C, Slurm's)
//! and the exit status are hisdf-torch's own. Every failure prints one line
//! starting with "hisdf: error:" and exits with status 1; usage errors exit
//! with 2.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

mod about;
mod eval;
mod geometry;
mod output;

use clap::{Parser, Subcommand};
use output::{check_output, load_checked};

/// `--device` of `eval --model`, which this binary never reads: it hands
/// that command to hisdf-torch, whose parser reads the device with the
/// library's type.
type DeviceChoice = String;

type Result<T> = std::result::Result<T, String>;

/// The same name, version and commands as hisdf-torch's (main.rs), so the
/// help is the same (tests/cli_start.rs compares them).
#[derive(Parser)]
#[command(
    name = "hisdf",
    version,
    about = "High-resolution neural signed distance functions of 3D shapes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// hisdf-torch's commands in its order: the torch-free ones with their
/// arguments, the others with only their one line, for `--help`.
#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Geometry(geometry::GeometryCommand),
    #[command(about = about::QUERY, disable_help_flag = true)]
    Query(Passed),
    #[command(about = about::TRAIN, disable_help_flag = true)]
    Train(Passed),
    #[command(about = about::EXTRACT, disable_help_flag = true)]
    Extract(Passed),
    #[command(about = about::EVAL)]
    Eval(eval::EvalArgs),
    #[command(about = about::RUN, disable_help_flag = true)]
    Run(Passed),
    #[command(about = about::BATCH, disable_help_flag = true)]
    Batch(Passed),
    #[command(about = about::BATCH_MERGE, disable_help_flag = true)]
    BatchMerge(Passed),
    #[command(about = about::KEYS, disable_help_flag = true)]
    Keys(Passed),
}

/// The arguments of a command hisdf-torch runs, untouched (its own `--help`
/// among them): they are parsed there, where their types live.
#[derive(clap::Args)]
struct Passed {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    _args: Vec<OsString>,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // `hisdf help COMMAND` prints that command's full help, which for the
    // torch commands only hisdf-torch holds.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "help") && args.next().is_some() {
        exec_torch();
    }
    let result = match Cli::parse().command {
        Command::Geometry(c) => geometry::run(c),
        // A --device other than the default goes to hisdf-torch too, whose
        // parser refuses a bad one, as it always has.
        Command::Eval(a) if a.model.is_none() && a.device == "auto" => eval::eval(a, None),
        _ => exec_torch(),
    };
    if let Err(message) = result {
        eprintln!("hisdf: error: {message}");
        std::process::exit(1);
    }
}

/// hisdf-torch beside this executable (symbolic links resolved, as
/// `current_exe` does): the two are built and installed together.
fn torch_binary() -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name("hisdf-torch"))
}

/// Replaces this process by hisdf-torch with the same arguments; returns
/// only if that cannot start.
fn exec_torch() -> ! {
    let error = match torch_binary() {
        Ok(path) => {
            let mut args = std::env::args_os();
            // Our own argv[0]: clap names the program by it in usage lines,
            // which then read `hisdf`, as the user typed.
            let error = std::process::Command::new(&path)
                .arg0(args.next().unwrap_or_else(|| "hisdf".into()))
                .args(args)
                .exec();
            format!("{}: {error}", path.display())
        }
        Err(e) => format!("cannot find the running executable: {e}"),
    };
    eprintln!(
        "hisdf: error: cannot start hisdf-torch, which runs the commands that use libtorch ({error}); \
         it is built beside hisdf by `scripts/cargo build --release --bins` and installed with it"
    );
    std::process::exit(1);
}
