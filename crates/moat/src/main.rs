//! The `moat` command: `moat run [OPTIONS] -- CMD [ARGS]...`.
//!
//! Exit codes: the command's own; 128+N when a signal killed it; 124 on timeout;
//! 126/127 when it cannot be executed or found; 125 when moat itself failed (including
//! bad flags, so that an agent can tell moat's errors from the command's).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use moat::{FilesystemMode, NetworkMode, Sandbox};

/// Run untrusted commands inside OS-enforced limits.
#[derive(Parser, Debug)]
#[command(name = "moat", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command in the sandbox.
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The workspace: the directory the command may write (default: the current one).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Another directory the command may write (repeatable).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["read_only", "full_access"])]
    writable: Vec<PathBuf>,
    /// Nothing is writable, not even the workspace (private temp dirs still are).
    #[arg(long, conflicts_with = "full_access")]
    read_only: bool,
    /// The whole filesystem is writable, as far as your own permissions go.
    #[arg(long)]
    full_access: bool,
    /// Network access: off (default) or on.
    #[arg(long, value_name = "off|on", default_value = "off", value_parser = parse_network)]
    network: NetworkMode,
    /// Stop the command after SECS seconds (SIGTERM, then SIGKILL); exit code 124.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Write a JSON report of the run to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Allow a workspace or writable root such as `/`, `/usr` or your home directory.
    #[arg(long)]
    allow_broad_workspace: bool,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<OsString>,
}

fn parse_network(s: &str) -> Result<NetworkMode, String> {
    s.parse::<NetworkMode>().map_err(|e| e.to_string())
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Run(args) => match run(args) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("moat: {e:#}");
                ExitCode::from(125)
            }
        },
    }
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    // Open the report file first: a path that cannot be written is refused before the
    // command runs, instead of turning its exit code into 125 afterwards.
    let report_file = match &args.report {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write the report to {}", path.display()))?,
        ),
        None => None,
    };
    let workspace = match args.workspace {
        Some(w) => w,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let mut sandbox = Sandbox::new(workspace);
    sandbox.allow_broad_workspace(args.allow_broad_workspace);
    let policy = sandbox.policy_mut();
    policy.filesystem = if args.read_only {
        FilesystemMode::ReadOnly
    } else if args.full_access {
        FilesystemMode::FullAccess
    } else {
        FilesystemMode::WorkspaceWrite
    };
    policy.extra_writable = args.writable;
    policy.network = args.network;
    policy.timeout = args.timeout;
    let report = sandbox.run(&args.command, std::env::vars_os().collect());
    if let Some(error) = &report.error {
        eprintln!("moat: {error}");
    }
    if let Some(mut file) = report_file {
        use std::io::Write as _;
        if let Err(e) = file.write_all((report.to_json() + "\n").as_bytes()) {
            eprintln!("moat: cannot write the report: {e}");
        }
    }
    Ok(u8::try_from(report.exit.code).unwrap_or(125))
}
