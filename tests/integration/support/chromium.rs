//! Headless Chromium (Debian's `chromium`) loading a page from a loopback server, for what only
//! a browser shows: the DOM after the page's scripts ran (an `EventSource` included), and
//! screenshots. Each call starts its own browser with a fresh profile in a temp dir and kills it
//! (its whole process group) when done, on failure, or `wait` + 30 s after the start at most.
//!
//! How it waits (checked by hand against Chromium 156 as root in this container):
//! - `--dump-dom` / `--screenshot` alone take the page right at its `load` event: a page whose
//!   `EventSource` has not received anything yet shows nothing of it, and `--timeout=MS` is only
//!   an upper bound for that `load`, it does not make Chromium wait longer.
//! - `--virtual-time-budget=MS` never finishes with a live stream open: virtual time only
//!   advances while no network request is pending, and an `EventSource` is a request that never
//!   ends. Chromium hung until killed (60 s) with the DOM never dumped.
//! - What works: `--remote-debugging-pipe` (the DevTools protocol as NUL-terminated JSON on
//!   fds 3 and 4, no websocket): navigate, let `wait` of *real* time pass while the page runs
//!   (its `EventSource` receives events and its scripts update the DOM), then read
//!   `document.documentElement.outerHTML` (`Runtime.evaluate`) or `Page.captureScreenshot`.
//!   A page with an `EventSource` to a server sending one event a second showed the counter
//!   at 4 after a 3.5 s wait (`chromium_selftest` checks a 200 ms stream the same way). The
//!   `wait` counts from the navigation's commit; starting the browser adds ~0.6-1 s before.
//!
//! Flags: `--headless=new --no-sandbox` (root in a container has no usable sandbox)
//! `--disable-gpu --disable-dev-shm-usage` (small /dev/shm) `--no-first-run`, a temp
//! `--user-data-dir`, no proxy, and `--host-resolver-rules` that resolve no host but
//! `localhost` and `127.0.0.1` (any other gives `net::ERR_NAME_NOT_RESOLVED`; note `[::1]` is
//! not excluded), plus the usual switches against background traffic: only loopback is
//! reached. Chromium refuses its "unsafe" ports (`net::ERR_UNSAFE_PORT`: 1, 6000, 6665-6669,
//! 10080, ...); `support::closed_port()` gives ephemeral ports, which are all allowed.
//! Chromium's stderr (dbus complaints and the like, harmless) is kept for failure messages.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/chromium";

/// A page as the browser had it after the wait.
#[derive(Debug, Clone)]
pub struct Page {
    /// The serialized DOM after scripts ran: the doctype (if any), a newline, then
    /// `document.documentElement.outerHTML` (what `--dump-dom` prints).
    pub dom: String,
    /// The page's console messages and uncaught exceptions, in order, one line each
    /// (`console.log: text`, `exception: TypeError: ...`): for failure messages.
    pub console: Vec<String>,
}

fn binary() -> Option<&'static str> {
    if Path::new(BINARY).is_file() {
        Some(BINARY)
    } else {
        crate::support::skip("chromium", "install it with `apt-get install chromium`");
        None
    }
}

/// Loads `url` in headless Chromium and returns the DOM after `wait` of real time since the
/// navigation (scripts and an `EventSource` keep running meanwhile); `None` after
/// `support::skip` when Chromium is missing. Panics (with Chromium's stderr) when the page
/// cannot be loaded (e.g. connection refused) or Chromium does not answer.
pub async fn dump_dom(url: &str, wait: Duration) -> Option<String> {
    load(url, wait).await.map(|p| p.dom)
}

/// `dump_dom`, and the page's console output too.
pub async fn load(url: &str, wait: Duration) -> Option<Page> {
    let chromium = binary()?;
    let url = url.to_owned();
    let (page, _) = blocking(move || visit(chromium, &url, wait, (1280, 800), None)).await;
    Some(page)
}

/// Saves a PNG screenshot of `url`'s viewport at `width`x`height` CSS pixels (scale 1) to
/// `path`, taken `wait` after the navigation; returns whether the file was written (`false`
/// when Chromium could not capture or the file could not be written: the reason is on
/// stderr). `None` after `support::skip` when Chromium is missing.
pub async fn screenshot(
    url: &str,
    path: &Path,
    width: u32,
    height: u32,
    wait: Duration,
) -> Option<bool> {
    let chromium = binary()?;
    let (url, path) = (url.to_owned(), path.to_owned());
    let (_, written) =
        blocking(move || visit(chromium, &url, wait, (width, height), Some(path.as_path()))).await;
    Some(written)
}

/// Runs `f` on a blocking thread (the browser is driven with plain pipes and sleeps), passing
/// its panic on with the original message.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the chromium task was cancelled: {e}"),
    }
}

fn visit(
    chromium: &str,
    url: &str,
    wait: Duration,
    (width, height): (u32, u32),
    shot: Option<&Path>,
) -> (Page, bool) {
    let mut b = Browser::launch(
        chromium,
        width,
        height,
        Instant::now() + wait + Duration::from_secs(30),
    );
    let target = b.call("Target.createTarget", json!({"url": "about:blank"}), None);
    let target = target["targetId"].as_str().unwrap_or_default().to_owned();
    let attached = b.call(
        "Target.attachToTarget",
        json!({"targetId": target, "flatten": true}),
        None,
    );
    let session = attached["sessionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let s = Some(session.as_str());
    b.call("Runtime.enable", json!({}), s);
    b.call("Page.enable", json!({}), s);
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        s,
    );
    let nav = b.call("Page.navigate", json!({"url": url}), s);
    if let Some(error) = nav["errorText"].as_str()
        && !error.is_empty()
    {
        b.fail(&format!("chromium could not load {url}: {error}"));
    }
    b.pump_until(Instant::now() + wait);
    let dom = b.call(
        "Runtime.evaluate",
        json!({
            "expression": "(document.doctype ? new XMLSerializer().serializeToString(document.doctype) + '\\n' : '') + (document.documentElement ? document.documentElement.outerHTML : '')",
            "returnByValue": true
        }),
        s,
    );
    let dom = dom["result"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut written = false;
    if let Some(path) = shot {
        match b.try_call("Page.captureScreenshot", json!({"format": "png"}), s) {
            Ok(r) => {
                use base64::Engine as _;
                let png = base64::engine::general_purpose::STANDARD
                    .decode(r["data"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                match std::fs::write(path, &png) {
                    Ok(()) => written = !png.is_empty(),
                    Err(e) => eprintln!(
                        "chromium: writing the screenshot to {}: {e}",
                        path.display()
                    ),
                }
            }
            Err(e) => eprintln!("chromium: Page.captureScreenshot of {url} failed: {e}"),
        }
    }
    let console = std::mem::take(&mut b.console);
    (Page { dom, console }, written)
}

/// One running browser, driven over `--remote-debugging-pipe`; killed when dropped.
struct Browser {
    child: Option<Child>,
    to: Option<ChildStdin>,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    deadline: Instant,
    console: Vec<String>,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Browser {
    fn launch(chromium: &str, width: u32, height: u32, deadline: Instant) -> Self {
        use std::os::unix::process::CommandExt as _;
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        let stderr = dir.path().join("chromium.log");
        let log = std::fs::File::create(&stderr).unwrap();
        // Chromium reads the protocol on fd 3 and writes it on fd 4: the shell puts our stdin
        // pipe on 3 and our stdout pipe on 4 (std cannot map other fds without unsafe code).
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--no-proxy-server",
                // `MAP *` covers IP literals too: 127.0.0.1 must be excluded by name.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-domain-reliability",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--metrics-recording-only",
                "--no-pings",
                "--mute-audio",
                "--hide-scrollbars",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("starting chromium");
        let to = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = BufReader::new(out);
            loop {
                let mut message = Vec::new();
                match out.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if message.last() == Some(&0) {
                            message.pop();
                        }
                        if let Ok(v) = serde_json::from_slice::<Value>(&message)
                            && tx.send(v).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        Self {
            child: Some(child),
            to,
            from,
            next_id: 0,
            deadline,
            console: Vec::new(),
            stderr,
            _dir: dir,
        }
    }

    /// Sends a command and returns its `result`; panics on a protocol error.
    fn call(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        match self.try_call(method, params, session) {
            Ok(v) => v,
            Err(e) => self.fail(&format!("chromium: {method} failed: {e}")),
        }
    }

    /// Sends a command and returns its `result`, or its `error` as text. Panics when Chromium
    /// is gone or does not answer before the deadline.
    fn try_call(
        &mut self,
        method: &str,
        params: Value,
        session: Option<&str>,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        let sent = match self.to.as_mut() {
            Some(to) => to.write_all(&bytes).and_then(|()| to.flush()),
            None => Err(std::io::Error::other("no pipe")),
        };
        if let Err(e) = sent {
            self.fail(&format!("chromium: sending {method}: {e} (did it exit?)"));
        }
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(m) if m["id"] == id => {
                    return match m.get("error") {
                        Some(e) => Err(e.to_string()),
                        None => Ok(m["result"].clone()),
                    };
                }
                Ok(m) => self.record(&m),
                Err(mpsc::RecvTimeoutError::Timeout) => self.fail(&format!(
                    "chromium did not answer {method} before its deadline"
                )),
                Err(mpsc::RecvTimeoutError::Disconnected) => self.fail(&format!(
                    "chromium closed its pipe before answering {method}"
                )),
            }
        }
    }

    /// Lets time pass until `until` (the page runs meanwhile), recording its console events.
    fn pump_until(&mut self, until: Instant) {
        let until = until.min(self.deadline);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.from.recv_timeout(left) {
                Ok(m) => self.record(&m),
                Err(mpsc::RecvTimeoutError::Timeout) => return,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.fail("chromium closed its pipe while the page was running")
                }
            }
        }
    }

    fn record(&mut self, event: &Value) {
        let p = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.consoleAPICalled") => {
                let args: Vec<String> = p["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| match &x["value"] {
                                Value::String(s) => s.clone(),
                                Value::Null => x["description"]
                                    .as_str()
                                    .unwrap_or_else(|| x["type"].as_str().unwrap_or("?"))
                                    .to_owned(),
                                v => v.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let kind = p["type"].as_str().unwrap_or("log");
                self.console
                    .push(format!("console.{kind}: {}", args.join(" ")));
            }
            Some("Runtime.exceptionThrown") => {
                let d = &p["exceptionDetails"];
                let what = d["exception"]["description"]
                    .as_str()
                    .or_else(|| d["text"].as_str())
                    .unwrap_or("?");
                self.console.push(format!(
                    "exception: {what} (at {}:{})",
                    d["url"].as_str().unwrap_or(""),
                    d["lineNumber"]
                ));
            }
            _ => {}
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        self.kill();
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        // Without the noise of every run: no D-Bus in a container, and the launcher script's
        // failed /dev/shm size test.
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains(":ERROR:dbus/") && !l.contains("unexpected operator"))
            .collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!(
            "{what}\nthe page's console:\n{}\nchromium's stderr (last 60 lines, D-Bus \
             complaints left out):\n{tail}",
            self.console.join("\n")
        );
    }

    fn kill(&mut self) {
        self.to = None;
        if let Some(mut c) = self.child.take() {
            // The whole group: the browser and its renderer, GPU and utility processes.
            let group = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}
