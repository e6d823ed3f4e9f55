use anyhow::Context;
use clap::Parser;
use sitewatch::cli::{Cli, Command, RunArgs};
use sitewatch::clock::SystemClock;
use sitewatch::config::Config;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for an invalid config.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command() {
        Command::CheckConfig(arg) => match Config::load(&arg.config) {
            Ok(c) => {
                println!("{}: valid, {} sites", arg.config.display(), c.sites.len());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Run(args) => {
            let config = match Config::load(&args.config.config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            match run(args, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sitewatch: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn config_error(e: &sitewatch::config::ConfigError) -> ExitCode {
    eprintln!("sitewatch: invalid config: {}", sitewatch::error_chain(e));
    ExitCode::from(EXIT_CONFIG)
}

fn run(args: RunArgs, config: Config) -> anyhow::Result<()> {
    init_logging(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sitewatch")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        sitewatch::monitor::run(
            config,
            args.output,
            Box::new(std::io::stdout()),
            Arc::new(SystemClock),
            shutdown_signal(),
        )
        .await
        .context("monitor failed")
    })?;
    // Do not wait for blocking DNS lookups that may still be running.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}

/// Logs go to stderr or a file, never to stdout (which carries the output).
fn init_logging(args: &RunArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &args.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {}", path.display()))?;
            builder.with_ansi(false).with_writer(Arc::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
