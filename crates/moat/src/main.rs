//! The `moat` command: `moat run [OPTIONS] -- CMD [ARGS]...`.
//!
//! Exit codes: the command's own; 128+N when a signal killed it; 124 on timeout;
//! 126/127 when it cannot be executed or found; 125 when moat itself failed (including
//! bad flags, so that an agent can tell moat's errors from the command's).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use moat::{FilesystemMode, NetworkMode, Sandbox};
use moat_policy::config::Layer;

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
    /// Inspect the effective policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Manage moat's copy-on-write tool-cache layers.
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Print the effective policy and where each value came from.
    Show {
        #[command(flatten)]
        policy: PolicyArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Empty the cache layers of every workspace (the real caches are never touched).
    Clear,
}

#[derive(Args, Debug)]
struct PolicyArgs {
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
    #[arg(long, value_name = "off|on", value_parser = parse_network)]
    network: Option<NetworkMode>,
    /// Stop the command after SECS seconds (SIGTERM, then SIGKILL); exit code 124.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<f64>,
    /// Keep this variable although its name looks like a credential (repeatable).
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    env_keep: Vec<String>,
    /// Set this variable for the command (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = moat_policy::env::parse_assignment)]
    env_set: Vec<(String, String)>,
    /// Also protect this path: a name at the root of each writable root, or absolute.
    #[arg(long, value_name = "PATH")]
    protect: Vec<String>,
    /// Remove a default protected name, e.g. `.vscode` (the explicit opt-out).
    #[arg(long, value_name = "NAME")]
    unprotect: Vec<String>,
    /// Also hide this secret path (absolute or ~/...).
    #[arg(long, value_name = "PATH")]
    secret: Vec<String>,
    /// Apply `[profile.NAME]` from the config files.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Allow a workspace or writable root such as `/`, `/usr` or your home directory.
    #[arg(long)]
    allow_broad_workspace: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Write a JSON report of the run to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<OsString>,
}

fn parse_name(s: &str) -> Result<String, String> {
    if moat_policy::env::is_valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("'{s}' is not a valid environment variable name"))
    }
}

fn parse_network(s: &str) -> Result<NetworkMode, String> {
    s.parse::<NetworkMode>().map_err(|e| e.to_string())
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Ok(secs)
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
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Policy(PolicyCommand::Show { policy, json }) => show_policy(&policy, json),
        Command::Cache(CacheCommand::Clear) => clear_cache(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("moat: {e:#}");
            ExitCode::from(125)
        }
    }
}

/// Resolves the policy from the config files and the flags.
fn resolve(args: &PolicyArgs) -> anyhow::Result<moat::policy::Resolved> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let workspace = cwd.join(args.workspace.clone().unwrap_or_else(|| cwd.clone()));
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute());
    let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
    let filesystem = if args.read_only {
        Some(FilesystemMode::ReadOnly)
    } else if args.full_access {
        Some(FilesystemMode::FullAccess)
    } else {
        None
    };
    let some_if = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let flags = Layer {
        filesystem,
        network: args.network,
        timeout: args.timeout,
        writable: (!args.writable.is_empty()).then(|| {
            args.writable
                .iter()
                .map(|p| cwd.join(p).to_string_lossy().into_owned())
                .collect()
        }),
        protect: some_if(&args.protect),
        unprotect: some_if(&args.unprotect),
        secrets: some_if(&args.secret),
        env_keep: some_if(&args.env_keep),
        env: (!args.env_set.is_empty()).then(|| args.env_set.iter().cloned().collect()),
        ..Layer::default()
    };
    let request = moat::policy::Request {
        workspace,
        user_config: moat::policy::user_config_path(xdg.as_deref(), home.as_deref()),
        home,
        profile: args.profile.clone(),
        flags,
    };
    Ok(moat::policy::resolve(&request)?)
}

fn show_policy(args: &PolicyArgs, json: bool) -> anyhow::Result<u8> {
    let resolved = resolve(args)?;
    if json {
        let value = serde_json::json!({
            "policy": resolved.policy,
            "sources": resolved.sources,
            "config_files": resolved.files,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    let p = &resolved.policy;
    let src = |k: &str| {
        resolved
            .sources
            .get(k)
            .cloned()
            .unwrap_or_else(|| "default".into())
    };
    let list = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("workspace      {}", p.workspace.display());
    println!(
        "filesystem     {:<40} ({})",
        format!("{:?}", p.filesystem).to_lowercase(),
        src("filesystem")
    );
    println!(
        "network        {:<40} ({})",
        format!("{:?}", p.network).to_lowercase(),
        src("network")
    );
    let timeout = p
        .timeout
        .map_or("none".into(), |t| format!("{}s", t.as_secs_f64()));
    println!("timeout        {timeout:<40} ({})", src("timeout"));
    println!(
        "writable       {:<40} ({})",
        list(&p.writable_roots()),
        src("writable")
    );
    let protected: Vec<_> = p
        .protected
        .at_root
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    println!(
        "protected      {} ({})",
        protected.join(" "),
        src("protect")
    );
    println!(
        "protect git    {} ({})",
        p.protected.git,
        src("protect-git")
    );
    println!("secrets        {} ({})", list(&p.secrets), src("secrets"));
    println!("scrub env      {} ({})", p.env.scrub, src("scrub-env"));
    println!(
        "env keep       {} ({})",
        p.env.keep.join(" "),
        src("env-keep")
    );
    let set: Vec<_> = p.env.set.iter().map(|(k, _)| k.as_str()).collect();
    println!("env set        {} ({})", set.join(" "), src("env"));
    println!("caches         {} ({})", list(&p.caches), src("caches"));
    for f in &resolved.files {
        println!("config file    {}", f.display());
    }
    Ok(0)
}

fn clear_cache() -> anyhow::Result<u8> {
    let env: Vec<_> = std::env::vars_os().collect();
    match moat::clear_caches(&env).context("cannot clear the cache layers")? {
        Some(dir) => eprintln!("moat: cleared {}", dir.display()),
        None => eprintln!("moat: no state directory (HOME is not set)"),
    }
    Ok(0)
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
    let resolved = resolve(&args.policy);
    let mut report;
    match resolved {
        Ok(resolved) => {
            let mut sandbox = Sandbox::with_policy(resolved.policy);
            sandbox.allow_broad_workspace(args.policy.allow_broad_workspace);
            report = sandbox.run(&args.command, std::env::vars_os().collect());
        }
        Err(e) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            report = moat::Report::new(&args.command, &cwd);
            report.fail_setup(format!("{e:#}"));
        }
    }
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
