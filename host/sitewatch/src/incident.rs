//! `sitewatch incident`: open, update, resolve and list the incidents the status page shows.
//! The store is written directly (beside a running sitewatch, whose page reads it).

use crate::cli::{IncidentCommand, IncidentStore};
use crate::config::Config;
use crate::store::Store;
use anyhow::{Context, bail};
use sitewatch_store::incidents::{self, Status};
use std::io::Write;

/// Runs one `incident` subcommand.
pub fn run(cmd: IncidentCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match cmd {
        IncidentCommand::Open(args) => {
            let status = Status::parse(&args.status).map_err(anyhow::Error::msg)?;
            check_sites(&args.store, &args.site)?;
            let mut conn = writable(&args.store)?.connect_for_writing()?;
            let id = incidents::open(
                &mut conn,
                &args.title,
                &args.site,
                status,
                args.message.as_deref(),
                now,
            )?;
            println!("{id}");
        }
        IncidentCommand::Update(args) => {
            let status = args
                .status
                .as_deref()
                .map(Status::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let mut conn = writable(&args.store)?.connect_for_writing()?;
            let s = incidents::update(&mut conn, args.id, status, &args.message, now)?;
            println!("incident {}: {}", args.id, s.as_str());
        }
        IncidentCommand::Resolve(args) => {
            let mut conn = writable(&args.store)?.connect_for_writing()?;
            incidents::update(
                &mut conn,
                args.id,
                Some(Status::Resolved),
                &args.message,
                now,
            )?;
            println!("incident {}: resolved", args.id);
        }
        IncidentCommand::List(args) => {
            let store = Store::existing(&args.data_dir.data_dir)?;
            let conn = store.connect()?;
            let list = incidents::recent(&conn, crate::clock::ago(now, args.since))?;
            let mut out = std::io::stdout().lock();
            if args.output == crate::output::OutputFormat::Json {
                for i in &list {
                    writeln!(out, "{}", i.to_json())?;
                }
                return Ok(());
            }
            if list.is_empty() {
                writeln!(
                    out,
                    "no incidents open or resolved in the last {}",
                    humantime::format_duration(args.since)
                )?;
            }
            for i in &list {
                let sites = if i.sites.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", i.sites.join(", "))
                };
                writeln!(
                    out,
                    "#{} {}{} {}, opened {}",
                    i.id,
                    crate::config::printable(&i.title),
                    crate::config::printable(&sites),
                    i.status.as_str(),
                    i.opened.format("%Y-%m-%d %H:%M UTC")
                )?;
                for u in i.updates.iter().rev() {
                    writeln!(
                        out,
                        "  {} {:<13} {}",
                        u.time.format("%Y-%m-%d %H:%M"),
                        u.status.as_str(),
                        crate::config::printable(&u.message)
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// The store to write to, made if sitewatch never ran here.
fn writable(at: &IncidentStore) -> anyhow::Result<Store> {
    Ok(match Store::existing(&at.data_dir.data_dir) {
        Ok(s) => s,
        Err(_) => Store::open(&at.data_dir.data_dir)?.0,
    })
}

/// Every named site must be one of the config's.
fn check_sites(at: &IncidentStore, sites: &[String]) -> anyhow::Result<()> {
    if sites.is_empty() {
        return Ok(());
    }
    let path = &at.config.config;
    let mut names = Config::site_names(path)
        .with_context(|| format!("reading {} for the site names", path.display()))?;
    if sites.iter().any(|s| !names.iter().any(|n| n == s.trim())) {
        // A site without a `name` goes by one made from its URL: the resolved config knows it
        // (when the environment holds what it names).
        if let Ok(config) = Config::load(path) {
            names = config.sites.into_iter().map(|s| s.name).collect();
        }
    }
    for s in sites {
        if !names.iter().any(|n| n == s.trim()) {
            bail!(
                "--site {}: no site of {} has this name",
                crate::config::printable(s),
                at.config.config.display()
            );
        }
    }
    Ok(())
}
