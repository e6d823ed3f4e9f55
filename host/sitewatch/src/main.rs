use anyhow::Context;
use clap::Parser;
use sitewatch::cli::{
    AlertsArgs, Cli, Command, NotifyCommand, NotifyListArgs, NotifyTestArgs, OutboxArgs,
    PluginCommand, PluginTestArgs, ReportArgs, RunArgs,
};
use sitewatch::clock::SystemClock;
use sitewatch::config::Config;
use sitewatch::event::Event;
use sitewatch::output::write_event;
use sitewatch::store::Store;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for an invalid config.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command() {
        Command::CheckConfig(args) => match Config::load(&args.config.config) {
            Ok(c) if args.print => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", sitewatch::config::print::to_json(&c))
                    .and_then(|()| out.flush())
                    .context("printing the config")
            }
            Ok(c) => {
                println!(
                    "{}: valid, {} sites",
                    args.config.config.display(),
                    c.sites.len()
                );
                Ok(())
            }
            Err(e) => return config_error(&e),
        },
        Command::Run(args) => {
            // `--location`, `--node`, `--source-address` apply to every read of the config.
            let overrides = sitewatch::config::cluster::Overrides {
                location: args.location.clone(),
                node: args.node.clone(),
                source_address: args.source_address,
            };
            match Config::load_with(&args.config.config, &overrides) {
                Ok(config) => run(args, config),
                Err(e) => return config_error(&e),
            }
        }
        Command::Report(args) => report(args),
        Command::Alerts(args) => alerts(args),
        Command::Outbox(args) => outbox(args),
        Command::Plugin(cmd) => plugin(cmd),
        Command::Notify(cmd) => notify(cmd),
        Command::Maintenance(sitewatch::cli::MaintenanceCommand::List(args)) => {
            match Config::load(&args.config.config) {
                Ok(config) => maintenance_list(&args, &config),
                Err(e) => return config_error(&e),
            }
        }
        Command::Incident(cmd) => sitewatch::incident::run(cmd),
        Command::Import(args) => sitewatch::import::run(&args),
        Command::PushToken => sitewatch::probe::push::new_token()
            .map(|t| println!("{t}"))
            .context("reading random bytes from /dev/urandom"),
        Command::Store(sitewatch::cli::StoreCommand::RebuildRollups(args)) => {
            match rebuild_rollups(&args) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `sitewatch report | head`: the reader has what it wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sitewatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn config_error(e: &sitewatch::config::ConfigError) -> ExitCode {
    eprintln!("sitewatch: invalid config: {}", sitewatch::error_chain(e));
    ExitCode::from(EXIT_CONFIG)
}

fn run(args: RunArgs, config: Config) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let format = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        sitewatch::output::OutputFormat::Tty
    } else {
        sitewatch::output::OutputFormat::Plain
    });
    let log_file = match (&args.log_file, format) {
        (Some(f), _) => Some(f.clone()),
        (None, sitewatch::output::OutputFormat::Tty) => {
            std::fs::create_dir_all(&args.data_dir.data_dir).ok();
            Some(args.data_dir.data_dir.join("sitewatch.log"))
        }
        (None, _) => None,
    };
    init_logging(log_file.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sitewatch")
        .build()
        .context("starting the async runtime")?;
    let options = sitewatch::monitor::RunOptions {
        format,
        plugin_cache: plugin_cache_dir()
            .unwrap_or_else(|| Some(args.data_dir.data_dir.join("plugin-cache"))),
        data_dir: args.data_dir.data_dir,
        config_path: args.config.config,
        listen: args.listen,
        overrides: sitewatch::config::cluster::Overrides {
            location: args.location,
            node: args.node,
            source_address: args.source_address,
        },
    };
    runtime.block_on(async {
        sitewatch::monitor::run(
            config,
            options,
            // Buffered: an event is many small writes; the output thread flushes whenever it has
            // caught up, so nothing waits in the buffer.
            Box::new(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stdout(),
            )),
            Arc::new(SystemClock::new()),
            shutdown_signal(),
        )
        .await
        .context("monitor failed")
    })?;
    // Do not wait for blocking DNS lookups that may still be running.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}

/// The config for `report` and `alerts`: `None` when the file does not exist, unless `--tag`
/// needs it (tags are not stored); and the tag filter.
fn config_for_tags(
    arg: &sitewatch::cli::ConfigArg,
    tags: &[String],
) -> anyhow::Result<(Option<Config>, Option<sitewatch::report::TagFilter>)> {
    if !arg.config.exists() {
        anyhow::ensure!(
            tags.is_empty(),
            "--tag needs the config, where tags are (the store keeps none): {} does not exist; name it with --config",
            arg.config.display()
        );
        return Ok((None, None));
    }
    let config = Config::load(&arg.config)?;
    let filter = sitewatch::report::TagFilter::new(&config, tags, "--tag")
        .with_context(|| format!("--tag: in {}", arg.config.display()))?;
    Ok((Some(config), filter))
}

fn report(args: ReportArgs) -> anyhow::Result<()> {
    use sitewatch::history::{self, ReportFormat, Source};
    let store = Store::existing(&args.data_dir.data_dir)?;
    // The configured threshold colours availability; no config file means the default one.
    let (config, filter) = config_for_tags(&args.config, &args.tag)?;
    let threshold = config
        .as_ref()
        .map_or(sitewatch::config::DEFAULT_THRESHOLD, |c| {
            c.alerting.threshold
        });
    let retention = config
        .as_ref()
        .map(|c| c.storage.retention)
        .unwrap_or_default();
    let calendar = history::Calendar::parse(args.tz.as_deref(), Some(&args.week_start), "--")
        .map_err(anyhow::Error::msg)?;
    // `--sla` without a value: each site's own objective, over the longest period.
    let objectives = match (args.sla, &config) {
        (Some(None), Some(c)) => Some(slo_objectives(c)?),
        (Some(None), None) => anyhow::bail!(
            "--sla without an objective takes each site's slo from the config, and {} does not exist: name it with --config, or give one (--sla 99.9)",
            args.config.config.display()
        ),
        _ => None,
    };
    let since = args.since.unwrap_or_else(|| {
        objectives
            .as_ref()
            .and_then(|o| o.values().map(|(_, period)| *period).max())
            .unwrap_or(sitewatch::report::DEFAULT_SINCE)
    });
    let request = history::Request {
        since,
        site: args.site.clone(),
        by: args.by,
        sla: match (&args.sla, &objectives) {
            (Some(Some(p)), _) => Some(*p),
            // A valid objective for the checks; each row gets its own below.
            (_, Some(o)) => o.values().next().map(|(p, _)| *p),
            _ => None,
        },
        calendar,
        include_maintenance: args.include_maintenance,
    };
    let now = chrono::Utc::now();
    // Without --by or --sla, a report the raw rows cover keeps the live views' shape (with the
    // sites' alert and certificate states); the rollups answer the rest.
    let classic = args.by.is_none() && args.sla.is_none();
    let (source, _, _) = history::choose(&request, &retention, now)?;
    if classic && source == Source::Raw && args.output != ReportFormat::Csv {
        return raw_report(
            &args,
            &store,
            config.as_ref(),
            filter.as_ref(),
            threshold,
            now,
        );
    }
    let mut answer = history::report(&store, &request, &retention, now)?;
    if let Some(o) = &objectives {
        answer.rows.retain(|r| o.contains_key(&*r.site));
        for r in &mut answer.rows {
            r.objective = o.get(&*r.site).map(|(p, _)| *p);
        }
    }
    if let Some(f) = &filter {
        answer.rows.retain(|r| f.matches(&r.site));
        anyhow::ensure!(
            !answer.rows.is_empty(),
            "no measurements of sites {} in the last {}",
            f.describe(),
            history::days(since)
        );
    }
    let mut out = std::io::stdout().lock();
    if classic && args.output != ReportFormat::Csv {
        let mut report = history::to_stats_report(&answer, since, threshold);
        if let Some(c) = &config {
            sitewatch::report::tag_report(&mut report, c, None);
        }
        if args.output == ReportFormat::Json {
            writeln!(out, "{}", history::stats_json(&answer, report))?;
        } else {
            writeln!(
                out,
                "from the {} rollups since {} (percentiles within {}%)",
                history::tier_names(&answer),
                sitewatch::clock::rfc3339_seconds(answer.from),
                history::RELATIVE_ERROR * 100.0
            )?;
            write_event(
                sitewatch::output::OutputFormat::Plain,
                &mut out,
                &Event::Stats(report),
                None,
            )?;
        }
    } else {
        history::write(&answer, args.output, &mut out)?;
    }
    Ok(out.flush()?)
}

/// Each site's `slo` in the config: name -> (objective in percent, period). Empty is an error:
/// `--sla` without a value has nothing to judge by.
fn slo_objectives(
    config: &Config,
) -> anyhow::Result<std::collections::HashMap<String, (f64, std::time::Duration)>> {
    let found: std::collections::HashMap<_, _> = config
        .sites
        .iter()
        .filter_map(|s| {
            let o = s.alerting.slo?;
            Some((s.name.clone(), (o.objective * 100.0, o.period)))
        })
        .collect();
    anyhow::ensure!(
        !found.is_empty(),
        "--sla without an objective takes each site's slo from the config, and no site has one: add \"slo\": {{\"objective\": \"99.9%\", \"period\": \"30d\"}} (to a site, or as alerting.slo), or give one (--sla 99.9)"
    );
    Ok(found)
}

/// `report` over raw rows, in the live views' shape.
fn raw_report(
    args: &ReportArgs,
    store: &Store,
    config: Option<&Config>,
    filter: Option<&sitewatch::report::TagFilter>,
    threshold: f64,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let since = args.since.unwrap_or(sitewatch::report::DEFAULT_SINCE);
    let mut report = sitewatch::report::stats_since(
        store,
        since,
        args.site.as_deref(),
        now,
        threshold,
        args.include_maintenance,
    )?;
    if let Some(c) = config {
        sitewatch::report::tag_report(&mut report, c, filter);
    }
    let period = humantime::format_duration(since);
    match (&args.site, filter) {
        (Some(site), None) if report.sites.is_empty() => {
            anyhow::bail!("no measurements of site \"{site}\" in the last {period}")
        }
        (Some(site), Some(f)) if report.sites.is_empty() => anyhow::bail!(
            "no measurements of site \"{site}\" {} in the last {period}",
            f.describe()
        ),
        (None, Some(f)) if report.sites.is_empty() => {
            anyhow::bail!(
                "no measurements of sites {} in the last {period}",
                f.describe()
            )
        }
        _ => {}
    }
    let format = match args.output {
        sitewatch::history::ReportFormat::Json => sitewatch::output::OutputFormat::Json,
        _ => sitewatch::output::OutputFormat::Plain,
    };
    let mut out = std::io::stdout().lock();
    write_event(format, &mut out, &Event::Stats(report), None)?;
    Ok(out.flush()?)
}

/// `sitewatch store rebuild-rollups [--check]`; false when checking found differences.
fn rebuild_rollups(args: &sitewatch::cli::RebuildRollupsArgs) -> anyhow::Result<bool> {
    let store = Store::existing(&args.data_dir.data_dir)?;
    // Creates the rollup tables of a store last written by an older sitewatch.
    let mut conn = store.connect_for_writing()?;
    let r = sitewatch::history::rebuild(&mut conn, args.check)
        .with_context(|| format!("rebuilding the rollups of {}", store.path().display()))?;
    let what = if args.check { "checked" } else { "rebuilt" };
    println!(
        "{what} {} rollup cells of {} sites from {} measurements; {} {}",
        r.cells,
        r.sites,
        r.measurements,
        r.differing,
        if args.check {
            "differ from the raw rows"
        } else {
            "were replaced"
        }
    );
    Ok(!(args.check && r.differing > 0))
}

/// `sitewatch maintenance list`: each site's open and next windows, computed from the config
/// (nothing is stored per occurrence).
fn maintenance_list(
    args: &sitewatch::cli::MaintenanceListArgs,
    config: &Config,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let json = args.output == sitewatch::output::OutputFormat::Json;
    let mut any = false;
    for site in sitewatch::views::maintenance(config, chrono::Utc::now(), args.next) {
        if json {
            writeln!(out, "{}", site.json())?;
        } else if let Some(text) = site.text() {
            any = true;
            writeln!(out, "{text}")?;
        }
    }
    if !any && !json {
        writeln!(
            out,
            "no maintenance windows in {}",
            args.config.config.display()
        )?;
    }
    Ok(out.flush()?)
}

fn alerts(args: AlertsArgs) -> anyhow::Result<()> {
    let store = Store::existing(&args.data_dir.data_dir)?;
    // Read only for --tag: a config that no longer loads must not hide the stored alerts.
    let filter = if args.tag.is_empty() {
        None
    } else {
        config_for_tags(&args.config, &args.tag)?.1
    };
    let mut alerts = sitewatch::report::alerts_since(&store, args.since, chrono::Utc::now())?;
    if let Some(f) = &filter {
        alerts.retain(|(a, _)| f.matches(&a.site));
    }
    let mut out = std::io::stdout().lock();
    let json = args.output == sitewatch::output::OutputFormat::Json;
    if alerts.is_empty() && !json {
        writeln!(
            out,
            "no alerts{} in the last {}",
            filter
                .as_ref()
                .map(|f| format!(" of sites {}", f.describe()))
                .unwrap_or_default(),
            humantime::format_duration(args.since)
        )?;
    }
    for (a, deliveries) in alerts {
        if json {
            writeln!(
                out,
                "{}",
                sitewatch::report::alert_value(&a, &deliveries, None)
            )?;
            continue;
        }
        write_event(args.output, &mut out, &Event::Alert(a), None)?;
        if !deliveries.is_empty() {
            let said: Vec<String> = deliveries.iter().map(|d| d.describe()).collect();
            writeln!(out, "    notify: {}", said.join("; "))?;
        }
    }
    Ok(out.flush()?)
}

/// `sitewatch notify test NAME`: a sample alert through one notifier, and the service's answer.
fn notify(cmd: NotifyCommand) -> anyhow::Result<()> {
    match cmd {
        NotifyCommand::Test(args) => notify_test(args),
        NotifyCommand::List(args) => notify_list(args),
    }
}

fn notify_test(args: NotifyTestArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config.config)?;
    let Some(n) = config.notify.iter().find(|n| n.name == args.name) else {
        let names: Vec<&str> = config.notify.iter().map(|n| n.name.as_str()).collect();
        anyhow::bail!(
            "{} has no notifier \"{}\"{}",
            args.config.config.display(),
            args.name,
            if names.is_empty() {
                " (its notify list is empty)".to_owned()
            } else {
                format!("; it has {}", names.join(", "))
            }
        );
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let answers = runtime.block_on(async {
        let clock: sitewatch::clock::SharedClock = Arc::new(SystemClock::new());
        let client = sitewatch::probe::Prober::new(Arc::clone(&clock))?.service_client();
        let mut notices = sitewatch::notify::sample_notices(n.kind(), clock.now());
        if let Some(u) = &n.formatter {
            let plugins = Arc::new(sitewatch::plugin::set::PluginSet::new(
                plugin_commands_cache_dir(),
            ));
            let prepared = plugins.prepare(&config).await;
            if let Some(e) = prepared.errors.first() {
                anyhow::bail!("{}", sitewatch::error_chain(e));
            }
            plugins.add(prepared);
            let formatter = sitewatch::recorder::alert_stage::PluginFormatter {
                plugin: u.clone(),
                plugins,
            };
            use sitewatch::recorder::alert_stage::AlertFormatter;
            for notice in &mut notices {
                match formatter.render(&notice.alert, &[]).await {
                    Ok(text) => notice.body = Some(text),
                    Err(e) => anyhow::bail!("formatter {} failed: {e}", u.plugin),
                }
            }
        }
        anyhow::Ok(sitewatch::notify::send_test(n, &client, &notices).await)
    })?;
    let mut failed = 0;
    for (what, outcome) in &answers {
        use sitewatch::notify::send::Outcome;
        match outcome {
            Outcome::Delivered(answer) => println!("{}: sent the {what}: {answer}", n.name),
            Outcome::Retry { why, .. } => {
                failed += 1;
                println!(
                    "{}: the {what} was not taken (it would be retried): {why}",
                    n.name
                )
            }
            Outcome::Failed(reply) => {
                failed += 1;
                println!("{}: the {what} was refused: {reply}", n.name)
            }
        }
    }
    anyhow::ensure!(failed == 0, "notifier {} did not take the test", n.name);
    Ok(())
}

fn notify_list(args: NotifyListArgs) -> anyhow::Result<()> {
    // Names and types only: the list reads the store, and needs none of the notifiers' secrets.
    let notifiers = Config::notifier_names(&args.config.config)?;
    let summaries = match Store::existing(&args.data_dir.data_dir) {
        Ok(store) => sitewatch::store::notices::summaries(&store.connect_for_writing()?)?,
        Err(sitewatch::store::StoreError::Missing { .. }) => Default::default(),
        Err(e) => return Err(e.into()),
    };
    let rows = sitewatch::views::notifier_queues(&notifiers, &summaries);
    let mut out = std::io::stdout().lock();
    if args.output == sitewatch::output::OutputFormat::Json {
        for row in &rows {
            writeln!(out, "{}", row.json())?;
        }
        return Ok(out.flush()?);
    }
    if rows.is_empty() {
        writeln!(out, "no notifiers in {}", args.config.config.display())?;
    }
    for row in &rows {
        writeln!(out, "{}", row.text())?;
    }
    Ok(out.flush()?)
}

/// `sitewatch outbox`: what waits for InfluxDB and what it refused; or moves the refused (parked)
/// lines back into the queue, or deletes them.
fn outbox(args: OutboxArgs) -> anyhow::Result<()> {
    use serde_json::json;
    let store = Store::existing(&args.data_dir.data_dir)?;
    // Creates the outbox tables of a store last written by an older sitewatch.
    let mut conn = store.connect_for_writing()?;
    let json = args.output == sitewatch::output::OutputFormat::Json;
    let mut out = std::io::stdout().lock();
    if args.resend_parked || args.drop_parked {
        let (n, key, done) = if args.resend_parked {
            let n = store.resend_parked(&mut conn)?;
            (
                n,
                "resent",
                "moved back into the outbox; sitewatch sends them when it runs",
            )
        } else {
            (store.drop_parked(&conn)?, "dropped", "deleted")
        };
        if json {
            writeln!(out, "{}", json!({ key: n }))?;
        } else {
            writeln!(out, "{n} parked lines {done}")?;
        }
        return Ok(out.flush()?);
    }
    let s = store.outbox_summary(&conn)?;
    if json {
        writeln!(out, "{}", sitewatch::views::outbox_json(&s))?;
    } else {
        writeln!(out, "{}", sitewatch::views::outbox_text(&s))?;
    }
    Ok(out.flush()?)
}

/// `$SITEWATCH_PLUGIN_CACHE` when set: where compiled plugins are kept (empty: nowhere), for the
/// monitor and the `plugin` commands alike.
fn plugin_cache_dir() -> Option<Option<std::path::PathBuf>> {
    std::env::var_os("SITEWATCH_PLUGIN_CACHE").map(|dir| (!dir.is_empty()).then(|| dir.into()))
}

/// Where `plugin inspect` and `plugin test` keep compiled plugins, so that a second run of an
/// interpreter-sized plugin (Python, JS) takes milliseconds, not seconds:
/// `$SITEWATCH_PLUGIN_CACHE`, else the user's cache directory.
fn plugin_commands_cache_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = plugin_cache_dir() {
        return dir;
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
    Some(base.join("sitewatch/plugin-cache"))
}

fn plugin(cmd: PluginCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let host = sitewatch::plugin::PluginHost::new(plugin_commands_cache_dir().as_deref())?;
        match cmd {
            PluginCommand::Inspect { files } => {
                let mut failed = 0;
                for f in &files {
                    match host.load_file(f).await {
                        Ok(p) => println!("{}", sitewatch::plugin::cli::describe(&p)),
                        Err(e) => {
                            failed += 1;
                            eprintln!("{}: {}", f.display(), sitewatch::error_chain(&e));
                        }
                    }
                }
                anyhow::ensure!(
                    failed == 0,
                    "{failed} of {} plugins failed to load",
                    files.len()
                );
                Ok(())
            }
            PluginCommand::Test(args) => plugin_test(&host, args).await,
        }
    })
}

async fn plugin_test(
    host: &Arc<sitewatch::plugin::PluginHost>,
    args: PluginTestArgs,
) -> anyhow::Result<()> {
    use sitewatch::plugin::cli::{CannedResponse, sample_alert, test};
    if let Some(cases) = &args.cases {
        return plugin_test_cases(host, &args, cases).await;
    }
    serde_json::from_str::<serde_json::Value>(&args.config)
        .context("--config is not valid JSON")?;
    let plugin = host.load_file(&args.file).await?;
    if plugin.kind == sitewatch::plugin::PluginKind::Scenario {
        return plugin_test_scenario(host, plugin, &args).await;
    }
    let canned: CannedResponse = match &args.response {
        Some(path) => {
            let text =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a canned response", path.display()))?
        }
        None => CannedResponse::default(),
    };
    let report = test(
        host,
        &args.file,
        &args.config,
        canned.into(),
        sample_alert(),
        test_limits(&args),
    )
    .await?;
    match args.output {
        sitewatch::output::OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        sitewatch::output::OutputFormat::Plain | sitewatch::output::OutputFormat::Tty => {
            println!("plugin:  {} ({})", report.plugin, report.kind);
            match &report.reason {
                Some(r) => println!("verdict: {}: {r}", report.verdict),
                None => println!("verdict: {}", report.verdict),
            }
            if !report.metrics.is_empty() {
                let m: Vec<String> = report
                    .metrics
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!("metrics: {}", m.join(" "));
            }
            if let Some(out) = &report.output {
                println!("output:\n{out}");
            }
            println!(
                "time:    load {:.2} ms, call {:.3} ms (fresh instance)",
                report.load_ms, report.call_ms
            );
        }
    }
    Ok(())
}

/// `plugin test` of a scenario: one run against its target, each step printed; exits with
/// status 1 when the run is down.
async fn plugin_test_scenario(
    host: &Arc<sitewatch::plugin::PluginHost>,
    plugin: sitewatch::plugin::Plugin,
    args: &PluginTestArgs,
) -> anyhow::Result<()> {
    use sitewatch::plugin::{cli, scenario};
    let test = cli::ScenarioTest {
        config: args.config.clone(),
        allow: args.allow.clone(),
        timeout: args.timeout,
        max_requests: args.max_requests,
    };
    let name = plugin.name.to_string();
    let m = cli::test_scenario(host, plugin, &args.file, &test, test_limits(args))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    match args.output {
        sitewatch::output::OutputFormat::Json => println!(
            "{}",
            serde_json::json!({
                "plugin": name,
                "kind": "scenario",
                "verdict": if m.ok { "up" } else { "down" },
                "error": m.error.as_ref().map(|e| serde_json::json!({"kind": e.kind.as_str(), "message": e.message})),
                "steps": m.steps.iter().map(|s| serde_json::json!({
                    "name": &*s.name,
                    "duration_ms": sitewatch::ms(s.duration),
                    "requests": s.requests,
                    "failed": s.failed,
                })).collect::<Vec<_>>(),
                "metrics": m.metrics.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "run_ms": sitewatch::ms(m.duration),
            })
        ),
        sitewatch::output::OutputFormat::Plain | sitewatch::output::OutputFormat::Tty => {
            println!("plugin:  {name} (scenario)");
            println!("{}", scenario::report(&m));
            println!("time:    run {:.1} ms", sitewatch::ms(m.duration));
        }
    }
    if !m.ok {
        std::process::exit(1);
    }
    Ok(())
}

fn test_limits(args: &PluginTestArgs) -> sitewatch::config::PluginLimits {
    sitewatch::config::PluginLimits {
        memory: args.memory_limit_mib << 20,
        time: args.time_limit,
    }
}

/// `plugin test --cases FILE`: every case on one load; a mismatch fails the command.
async fn plugin_test_cases(
    host: &Arc<sitewatch::plugin::PluginHost>,
    args: &PluginTestArgs,
    cases: &std::path::Path,
) -> anyhow::Result<()> {
    use sitewatch::plugin::cli::{read_cases, run_cases};
    let list = read_cases(cases).map_err(anyhow::Error::msg)?;
    let results = run_cases(host, &args.file, list, test_limits(args)).await?;
    let failed = results.iter().filter(|r| r.mismatch.is_some()).count();
    for r in &results {
        match args.output {
            sitewatch::output::OutputFormat::Json => println!("{}", serde_json::to_string(r)?),
            _ => match &r.mismatch {
                None => println!("ok    {} ({:.3} ms)", r.name, r.report.call_ms),
                Some(why) => println!("FAIL  {}: {why}", r.name),
            },
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} cases in {} failed for {}",
            results.len(),
            cases.display(),
            args.file.display()
        );
    }
    if !matches!(args.output, sitewatch::output::OutputFormat::Json) {
        println!("{} cases passed: {}", results.len(), args.file.display());
    }
    Ok(())
}

/// Logs go to stderr or a file, never to stdout (which carries the output). Under the live display,
/// stderr would tear the screen, so logs then go to `sitewatch.log` unless `--log-file` says where.
fn init_logging(log_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let asked = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // The HTTP crates' debug lines name the hosts and URLs requested, which may come from
    // `${NAME}` variables: they are capped at info unless RUST_LOG names the crate.
    for krate in ["reqwest", "hyper", "hyper_util", "h2", "rustls"] {
        if !asked.contains(krate)
            && let Ok(d) = format!("{krate}=info").parse()
        {
            filter = filter.add_directive(d);
        }
    }
    // The server's access log of changes and refusals (with the token's name, never its
    // value) is on unless RUST_LOG says otherwise; reads are at debug.
    if !asked.contains("sitewatch::access")
        && let Ok(d) = "sitewatch::access=info".parse()
    {
        filter = filter.add_directive(d);
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log_file {
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
