//! Command-line interface.

use crate::output::OutputFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sitewatch",
    version,
    about = "Watches websites: availability, response times, alerts."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch the sites in the config (the default).
    Run(RunArgs),
    /// Validate the config and exit: 0 when valid, 2 with a message when not.
    CheckConfig(CheckConfigArgs),
    /// Print the stats of a past timeframe from the store.
    Report(ReportArgs),
    /// List the stored alerts, newest first.
    Alerts(AlertsArgs),
    /// Show what waits in the InfluxDB outbox and what InfluxDB refused (the parked lines).
    Outbox(OutboxArgs),
    /// Work with plugins: inspect a component, or run it once on a canned response.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Check the notifiers: send a sample alert through one, or list their queues.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Maintenance windows: list the next ones of every site.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Write a config.json from another monitor's config (Gatus' config.yaml, an Uptime Kuma
    /// backup), and list what did not map.
    Import(ImportArgs),
    /// Incidents on the status page: open one, post updates, resolve it, list them.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Work on the embedded store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print a new random token for a push site: put it in the variable its `token_env` names
    /// (it is shown this once; sitewatch keeps no copy).
    PushToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFrom {
    /// Gatus' config.yaml.
    Gatus,
    /// Uptime Kuma's backup JSON (Settings, Backup, Export).
    Kuma,
}

#[derive(Debug, Args, Clone)]
pub struct ImportArgs {
    /// Which monitor the file comes from.
    #[arg(value_enum)]
    pub from: ImportFrom,
    /// Its config file.
    pub file: PathBuf,
    /// Where to write the config.
    #[arg(long, default_value = "config.json")]
    pub out: PathBuf,
    /// Replace the file at --out if there is one.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Open an incident; prints its id.
    Open(IncidentOpenArgs),
    /// Post an update to an open incident's timeline.
    Update(IncidentUpdateArgs),
    /// Resolve an incident (a last update with status resolved).
    Resolve(IncidentResolveArgs),
    /// The incidents open now or resolved recently, newest first, with their timelines.
    List(IncidentListArgs),
}

/// Where incidents are kept and the sites they may name.
#[derive(Debug, Args, Clone)]
pub struct IncidentStore {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// The config the site names are checked against.
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args, Clone)]
pub struct IncidentOpenArgs {
    /// What happened, e.g. "Database failover".
    pub title: String,
    /// A site the incident concerns (repeat it, or give a comma list).
    #[arg(long, value_delimiter = ',')]
    pub site: Vec<String>,
    /// investigating (the default), identified or monitoring.
    #[arg(long, default_value = "investigating")]
    pub status: String,
    /// The first update's text (default: the title).
    #[arg(long)]
    pub message: Option<String>,
    #[command(flatten)]
    pub store: IncidentStore,
}

#[derive(Debug, Args, Clone)]
pub struct IncidentUpdateArgs {
    pub id: i64,
    /// What is new.
    pub message: String,
    /// investigating, identified, monitoring or resolved (default: as it was).
    #[arg(long)]
    pub status: Option<String>,
    #[command(flatten)]
    pub store: IncidentStore,
}

#[derive(Debug, Args, Clone)]
pub struct IncidentResolveArgs {
    pub id: i64,
    /// The last update's text.
    #[arg(default_value = "Resolved")]
    pub message: String,
    #[command(flatten)]
    pub store: IncidentStore,
}

#[derive(Debug, Args, Clone)]
pub struct IncidentListArgs {
    /// Resolved incidents this far back are listed too.
    #[arg(long, default_value = "7d", value_parser = crate::report::parse_since)]
    pub since: std::time::Duration,
    #[arg(long, short, value_enum, default_value = "plain")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Rebuild the minute, hour and day rollups from the raw measurements, for every period raw
    /// rows still cover (safe beside a running sitewatch).
    RebuildRollups(RebuildRollupsArgs),
}

#[derive(Debug, Args, Clone)]
pub struct RebuildRollupsArgs {
    /// Only compare: count the rollup cells that differ from the raw rows, write nothing, and
    /// exit with 1 when any does.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// The open and next maintenance windows of every site, soonest first.
    List(MaintenanceListArgs),
}

#[derive(Debug, Args, Clone)]
pub struct MaintenanceListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// How many windows per site.
    #[arg(long, default_value_t = 3)]
    pub next: usize,
    #[arg(long, short, value_enum, default_value = "plain")]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a sample alert (of a site called sitewatch-test) through the notifier NAME, once,
    /// and print the service's answer; exits with 1 when it did not take it.
    Test(NotifyTestArgs),
    /// Show each notifier's queue (waiting, delivered, failed) and its last result.
    List(NotifyListArgs),
}

#[derive(Debug, Args, Clone)]
pub struct NotifyTestArgs {
    /// The notifier's name in the config.
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args, Clone)]
pub struct NotifyListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub data_dir: DataDirArg,
    #[arg(long, short, value_enum, default_value = "plain")]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load plugins with the host's own loader and print their exports and imports.
    Inspect {
        /// The `.wasm` component files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a plugin once and print its verdict (or rendered text), metrics and timings; a
    /// scenario runs against its target (`--allow`) and prints each step, and the command
    /// exits with status 1 when the run is down.
    Test(PluginTestArgs),
}

#[derive(Debug, Args, Clone)]
pub struct PluginTestArgs {
    /// The `.wasm` component file.
    pub file: PathBuf,
    /// The plugin's config, as JSON text.
    #[arg(long, default_value = "{}")]
    pub config: String,
    /// A canned response (JSON: url, method, status, headers, body, ttfb_ms, response_ms), for
    /// checks. Without it, an empty 200 response is used.
    #[arg(long)]
    pub response: Option<PathBuf>,
    /// A JSON file of test cases (name, config, response, expect) to run instead of one call;
    /// exits with status 1 when any case's answer differs from what it expects.
    #[arg(long, conflicts_with_all = ["config", "response"])]
    pub cases: Option<PathBuf>,
    /// Scenarios: a host the scenario may reach (repeat it for more; `*.example.com` for the
    /// names under a domain). Without it, the host of the config's `url`.
    #[arg(long, value_name = "HOST")]
    pub allow: Vec<String>,
    /// Scenarios: the run's whole time (its requests, sleeps and its own work).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Scenarios: the most requests the run may send.
    #[arg(long, default_value_t = 20)]
    pub max_requests: u32,
    /// Time limit of the call (a scenario's own time, not its requests' or sleeps').
    #[arg(long, default_value = "100ms", value_parser = plugin_time_limit)]
    pub time_limit: std::time::Duration,
    /// Memory limit of the call, in MiB.
    #[arg(long, default_value_t = 32)]
    pub memory_limit_mib: u64,
    #[arg(long, short, value_enum, default_value = "plain")]
    pub output: OutputFormat,
}

#[derive(Debug, Args, Clone)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the resolved config as JSON, every default filled in; secrets (values from the
    /// environment, tokens, credential headers) are shown as `***`.
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// The config file.
    #[arg(long, short, default_value = "config.json", env = "SITEWATCH_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct DataDirArg {
    /// Where the embedded store lives (created with mode 0700).
    #[arg(long, default_value = "sitewatch-data", env = "SITEWATCH_DATA_DIR")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// How to print: the live `tty` display (the default on a terminal), `plain` text lines (the
    /// default otherwise), or `json` (one object per line).
    #[arg(long, short, value_enum)]
    pub output: Option<OutputFormat>,
    /// Write logs to this file instead of stderr.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Serve /metrics, the API and the status page here (e.g. 127.0.0.1:9184); overrides
    /// `server.listen` in the config.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// This node's cluster location (overrides `cluster.location`).
    #[arg(long, env = "SITEWATCH_LOCATION")]
    pub location: Option<String>,
    /// This node's name in the cluster (overrides `cluster.node`).
    #[arg(long, env = "SITEWATCH_NODE")]
    pub node: Option<String>,
    /// The local address probes connect from (overrides `probing.source_address`).
    #[arg(long, value_name = "IP")]
    pub source_address: Option<std::net::IpAddr>,
}

#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    /// The timeframe: from this long ago until now, e.g. `24h`, `30m`, `7d`, `90d`. Raw
    /// measurements answer while they are kept (7 days); beyond, the finest rollup tier that
    /// covers the timeframe (minute 30 days, hour a year, day 5 years), as the report says.
    /// Default 24h; with `--sla` and no objective, the longest `slo` period of the config.
    #[arg(long, value_parser = crate::report::parse_since)]
    pub since: Option<std::time::Duration>,
    /// One row per day, week or month per site (whole periods: the first is the one holding
    /// the start of the timeframe).
    #[arg(long, value_enum)]
    pub by: Option<crate::history::By>,
    /// Give each site's uptime against this objective in percent (e.g. 99.9): the downtime it
    /// allows over the timeframe, the downtime spent, the error budget left, the longest
    /// incident. Without a value: each site's own `slo` objective from the config (sites
    /// without one are left out).
    #[arg(long, conflicts_with = "by", num_args = 0..=1, value_name = "PERCENT")]
    pub sla: Option<Option<f64>>,
    /// The day weeks start on (`--by week`).
    #[arg(long, default_value = "monday")]
    pub week_start: String,
    /// The time zone days, weeks and months are counted in (an IANA name); UTC by default.
    #[arg(long)]
    pub tz: Option<String>,
    /// Only this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Only sites with this tag (repeat it, or give a comma list: a site with any of them
    /// matches). Tags are read from the config.
    #[arg(long, value_delimiter = ',')]
    pub tag: Vec<String>,
    /// Count probes that ran in maintenance windows in the figures (by default they are left
    /// out: planned downtime does not count against availability).
    #[arg(long)]
    pub include_maintenance: bool,
    #[arg(long, short, value_enum, default_value = "plain")]
    pub output: crate::history::ReportFormat,
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// The config whose alert threshold, tags and retention the report uses (the default threshold and
    /// no tags when the file does not exist).
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args, Clone)]
pub struct AlertsArgs {
    /// How far back, e.g. `7d`.
    #[arg(long, default_value = "7d", value_parser = crate::report::parse_since)]
    pub since: std::time::Duration,
    /// Only alerts of sites with this tag (repeat it, or give a comma list). Tags are read
    /// from the config.
    #[arg(long, value_delimiter = ',')]
    pub tag: Vec<String>,
    #[arg(long, short, value_enum, default_value = "plain")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// The config the tags are read from (only `--tag` needs it).
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args, Clone)]
pub struct OutboxArgs {
    /// Move the parked lines back into the outbox, to be sent again (once their cause is fixed).
    #[arg(long, conflicts_with = "drop_parked")]
    pub resend_parked: bool,
    /// Delete the parked lines.
    #[arg(long)]
    pub drop_parked: bool,
    #[arg(long, short, value_enum, default_value = "plain")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

/// `--time-limit` of `plugin test`: the limits a config may give a call.
fn plugin_time_limit(text: &str) -> Result<std::time::Duration, String> {
    crate::config::values::plugin_time_limit(text)
}

impl Cli {
    /// The command to run, with `run` as the default.
    pub fn command(self) -> Command {
        self.command.unwrap_or(Command::Run(self.run))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// Time-like texts, valid and not (shared in spirit with the API's own check).
    fn time_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,22}(ns|us|ms|s|m|h|d|w|M|y|years|months)?",
            "[0-9]{1,6}(y|d|h) ?[0-9]{0,6}(m|s)?",
            "-?[0-9]{0,4}\\.?[0-9]{0,4}(e[0-9]{1,4})?",
            "(UTC|Europe/Paris|Mars/Olympus|monday|sunday|Sundae|day|week|month|csv|json|include|exclude)",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

        /// The same through the command line: `report` and `alerts` take any value or refuse
        /// it with clap's usage error (exit 2), and what they take holds its time arithmetic.
        #[test]
        fn any_cli_time_option_is_checked(since in time_text(), tz in time_text(), week in time_text(), sla in time_text()) {
            use clap::Parser;
            let now = chrono::Utc::now();
            let args = ["sitewatch", "report", "--since", &since, "--tz", &tz, "--week-start", &week, "--sla", &sla];
            if let Ok(cli) = crate::cli::Cli::try_parse_from(args)
                && let crate::cli::Command::Report(r) = cli.command()
                && let Ok(calendar) = crate::history::Calendar::parse(r.tz.as_deref(), Some(&r.week_start), "--")
            {
                let request = crate::history::Request {
                    since: r.since.unwrap_or(crate::report::DEFAULT_SINCE),
                    site: None,
                    by: r.by,
                    sla: r.sla.flatten(),
                    calendar,
                    include_maintenance: false,
                };
                let _ = crate::history::choose(&request, &Default::default(), now);
            }
            if let Ok(cli) = crate::cli::Cli::try_parse_from(["sitewatch", "alerts", "--since", &since])
                && let crate::cli::Command::Alerts(a) = cli.command()
            {
                let _ = crate::clock::ago(now, a.since);
            }
        }
    }
}
