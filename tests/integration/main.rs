//! Integration tests: one test binary for the whole workspace (linking the host is slow).
//! Every target is a server on 127.0.0.1 that the test starts itself.

// Fixtures are shared by many test modules; not every module uses every helper.
#[allow(dead_code)]
mod support;

mod alert_noise;
mod alert_path;
mod alertmanager_selftest;
mod certs;
mod chromium_selftest;
mod cli;
mod cluster;
mod cluster_alerts;
mod cluster_auth;
mod config_secrets;
mod conformance;
mod core;
mod faults;
mod history;
mod hostile;
mod influx;
mod kinds;
mod lossless;
mod monitoring;
mod notify;
mod plugins;
mod prometheus_selftest;
mod receiver_selftest;
mod redirects;
mod reload;
mod scenarios;
mod security;
mod serve;
mod shapes_selftest;
mod smtp_selftest;
mod soak;
mod storage;
mod tags;
mod tls;
mod tty;
mod web;
