//! Changes to config.json as a document: what the write API does to the file. The file stays the
//! one source of truth: each change reads it afresh (so an edit made by hand in between is
//! kept), changes the JSON as typed (its key order kept, `${NAME}` references never expanded),
//! is checked like `check-config`, and is written atomically (a temp file beside it, fsync,
//! rename, fsync of the directory). The running monitor's file watch then reloads it.
//!
//! Writers are told apart by the file's hash (the API's `ETag`): [`write()`] refuses to replace a
//! file whose hash is no longer the one the change was made on.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What stands for a secret a response leaves out; given back in a change, it keeps the value.
pub const HIDDEN: &str = sitewatch_core::secret::HIDDEN;

/// Why a change was not made. [`EditError::status`] is the HTTP status the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    Bad(String),
    #[error("no site is named \"{0}\"")]
    NoSite(String),
    #[error("a site named \"{0}\" exists already")]
    Exists(String),
    /// No maintenance window or announcement (`what`) has this name.
    #[error("no {what} is named \"{name}\"")]
    NoNamed { what: &'static str, name: String },
    #[error(transparent)]
    Invalid(#[from] crate::ConfigError),
    #[error("config.json changed since it was read (its hash is now {now}): read it again")]
    Stale { now: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EditError {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::Bad(_) | Self::Invalid(_) => 400,
            Self::NoSite(_) | Self::NoNamed { .. } => 404,
            Self::Exists(_) => 409,
            Self::Stale { .. } => 412,
            Self::Io { .. } => 500,
        }
    }
}

/// The config file as read: its JSON (key order kept) and the hash of its bytes.
#[derive(Debug, Clone)]
pub struct Document {
    root: Map<String, Value>,
    hash: String,
}

/// The hash of a config file's bytes, as the API's `ETag` carries it.
pub fn hash_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of the file at `path` now.
pub fn current_hash(path: &Path) -> Result<String, EditError> {
    std::fs::read(path)
        .map(|b| hash_of(&b))
        .map_err(|source| EditError::Io {
            path: path.to_owned(),
            source,
        })
}

fn name_of(site: &Value) -> Option<&str> {
    site.get("name").and_then(Value::as_str).map(str::trim)
}

impl Document {
    /// Reads and parses the file (JSON only: what it says is checked when the change is).
    pub fn read(path: &Path) -> Result<Self, EditError> {
        let bytes = std::fs::read(path).map_err(|source| EditError::Io {
            path: path.to_owned(),
            source,
        })?;
        let root: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|e| {
            EditError::Bad(format!(
                "{} is not a JSON object ({e}): fix it by hand first",
                path.display()
            ))
        })?;
        Ok(Self {
            root,
            hash: hash_of(&bytes),
        })
    }

    /// The hash of the bytes this document was read from.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    fn sites_mut(&mut self) -> Result<&mut Vec<Value>, EditError> {
        let sites = self
            .root
            .entry("sites")
            .or_insert_with(|| Value::Array(Vec::new()));
        sites
            .as_array_mut()
            .ok_or_else(|| EditError::Bad("sites: is not a list".into()))
    }

    fn index(&mut self, name: &str) -> Result<usize, EditError> {
        let name = name.trim();
        self.sites_mut()?
            .iter()
            .position(|s| name_of(s) == Some(name))
            .ok_or_else(|| EditError::NoSite(name.to_owned()))
    }

    /// The site named `name` as typed in the file.
    pub fn site(&self, name: &str) -> Option<&Value> {
        self.root
            .get("sites")?
            .as_array()?
            .iter()
            .find(|s| name_of(s) == Some(name.trim()))
    }

    /// Adds a site at the end of `sites`.
    pub fn add_site(&mut self, site: Value) -> Result<String, EditError> {
        let name = object_with_name(&site, None)?;
        if self.site(&name).is_some() {
            return Err(EditError::Exists(name));
        }
        self.sites_mut()?.push(site);
        Ok(name)
    }

    /// Replaces the site named `name` where it stands. The body's `name`, if any, must be the
    /// same (renaming is a delete and an add); header values and a URL password given as `***`
    /// keep what the file has.
    pub fn replace_site(&mut self, name: &str, mut site: Value) -> Result<(), EditError> {
        object_with_name(&site, Some(name))?;
        let i = self.index(name)?;
        let sites = self.sites_mut()?;
        keep_hidden(&sites[i], &mut site);
        if let Value::Object(m) = &mut site
            && !m.contains_key("name")
        {
            // The name first, as a site is usually typed.
            let mut with = Map::new();
            with.insert("name".into(), Value::String(name.trim().to_owned()));
            with.extend(std::mem::take(m));
            *m = with;
        }
        sites[i] = site;
        Ok(())
    }

    /// Applies a JSON merge patch (RFC 7386) to the site named `name`: `null` removes a key.
    /// Header values and a URL password given as `***` keep what the file has.
    pub fn patch_site(&mut self, name: &str, patch: Value) -> Result<(), EditError> {
        if !patch.is_object() {
            return Err(EditError::Bad(
                "a PATCH body is a JSON object (a merge patch, RFC 7386)".into(),
            ));
        }
        if let Some(n) = patch.get("name")
            && n.as_str().map(str::trim) != Some(name.trim())
        {
            return Err(EditError::Bad(
                "name: a site is renamed by deleting it and adding it under the new name".into(),
            ));
        }
        let i = self.index(name)?;
        let sites = self.sites_mut()?;
        let mut site = sites[i].clone();
        merge_patch(&mut site, &patch);
        keep_hidden(&sites[i], &mut site);
        sites[i] = site;
        Ok(())
    }

    /// Removes the site named `name`; returns it as it was typed.
    pub fn delete_site(&mut self, name: &str) -> Result<Value, EditError> {
        let i = self.index(name)?;
        Ok(self.sites_mut()?.remove(i))
    }

    /// Sets or clears the site's `paused` (cleared by removing the key, as most sites have none).
    pub fn set_paused(&mut self, name: &str, paused: bool) -> Result<(), EditError> {
        let i = self.index(name)?;
        let site = self.sites_mut()?[i]
            .as_object_mut()
            .ok_or_else(|| EditError::Bad(format!("sites[{i}]: is not an object")))?;
        if paused {
            site.insert("paused".into(), Value::Bool(true));
        } else {
            site.shift_remove("paused");
        }
        Ok(())
    }

    /// Adds a one-off maintenance window (`start`, `end`, optional `name` and `sites`): to the
    /// named sites' own windows, or to the global ones. Returns its name (one is made when none
    /// is given, so it can be deleted).
    pub fn add_maintenance(&mut self, body: Value) -> Result<String, EditError> {
        let Value::Object(mut window) = body else {
            return Err(EditError::Bad(
                "a maintenance window is a JSON object: {\"start\": ..., \"end\": ..., \"name\": ..., \"sites\": [...]}".into(),
            ));
        };
        let sites = match window.shift_remove("sites") {
            None | Some(Value::Null) => None,
            Some(Value::Array(names)) => Some(
                names
                    .iter()
                    .map(|n| {
                        n.as_str()
                            .map(|s| s.trim().to_owned())
                            .ok_or_else(|| EditError::Bad("sites: give the names of sites".into()))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(EditError::Bad("sites: give a list of site names".into())),
        };
        for key in ["start", "end"] {
            if !window.get(key).is_some_and(Value::is_string) {
                return Err(EditError::Bad(format!(
                    "{key}: a one-off window needs start and end (RFC 3339 times)"
                )));
            }
        }
        if let Some(extra) = window
            .keys()
            .find(|k| !matches!(k.as_str(), "name" | "start" | "end"))
        {
            return Err(EditError::Bad(format!(
                "{extra}: not a field of a one-off window (name, start, end, sites)"
            )));
        }
        let name = match window.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_owned(),
            Some(Value::String(_)) | None => {
                let start = window["start"].as_str().unwrap_or_default();
                let made = format!("maintenance {start}");
                window.insert("name".into(), Value::String(made.clone()));
                made
            }
            Some(_) => return Err(EditError::Bad("name: is not text".into())),
        };
        // The name first, as windows are usually typed.
        let mut typed = Map::new();
        typed.insert("name".into(), Value::String(name.clone()));
        window.shift_remove("name");
        typed.extend(window);
        let typed = Value::Object(typed);
        match sites {
            None => push_at(&mut self.root, "maintenance", typed, "maintenance")?,
            Some(names) => {
                for n in &names {
                    let i = self.index(n)?;
                    let site = self.sites_mut()?[i]
                        .as_object_mut()
                        .ok_or_else(|| EditError::Bad(format!("sites[{i}]: is not an object")))?;
                    push_at(
                        site,
                        "maintenance",
                        typed.clone(),
                        &format!("sites[{i}].maintenance"),
                    )?;
                }
            }
        }
        Ok(name)
    }

    /// Adds an announcement (`message`, `start`, `end`, optional `name`): a banner on the status
    /// page from its start to its end. Returns its name (made from the start when none is given).
    pub fn add_announcement(&mut self, body: Value) -> Result<String, EditError> {
        let Value::Object(mut a) = body else {
            return Err(EditError::Bad(
                "an announcement is a JSON object: {\"message\": ..., \"start\": ..., \"end\": ..., \"name\": ...}".into(),
            ));
        };
        if let Some(extra) = a
            .keys()
            .find(|k| !matches!(k.as_str(), "name" | "message" | "start" | "end"))
        {
            return Err(EditError::Bad(format!(
                "{extra}: not a field of an announcement (name, message, start, end)"
            )));
        }
        let name = match a.shift_remove("name") {
            Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_owned(),
            None | Some(Value::Null) | Some(Value::String(_)) => format!(
                "announcement {}",
                a.get("start").and_then(Value::as_str).unwrap_or_default()
            ),
            Some(_) => return Err(EditError::Bad("name: is not text".into())),
        };
        let mut typed = Map::new();
        typed.insert("name".into(), Value::String(name.clone()));
        typed.extend(a);
        push_at(
            &mut self.root,
            "announcements",
            Value::Object(typed),
            "announcements",
        )?;
        Ok(name)
    }

    /// Removes every announcement named `name`; how many went.
    pub fn delete_announcement(&mut self, name: &str) -> Result<usize, EditError> {
        let name = name.trim();
        let mut removed = 0;
        if let Some(Value::Array(list)) = self.root.get_mut("announcements") {
            let before = list.len();
            list.retain(|a| a.get("name").and_then(Value::as_str).map(str::trim) != Some(name));
            removed = before - list.len();
        }
        if removed == 0 {
            return Err(EditError::NoNamed {
                what: "announcement",
                name: name.to_owned(),
            });
        }
        Ok(removed)
    }

    /// Removes every one-off window named `name` (global and per site); how many went.
    pub fn delete_maintenance(&mut self, name: &str) -> Result<usize, EditError> {
        let name = name.trim();
        let one_off_named = |w: &Value| {
            w.get("name").and_then(Value::as_str).map(str::trim) == Some(name)
                && w.get("start").is_some()
        };
        let mut removed = 0;
        let mut drop_from = |list: Option<&mut Value>| {
            if let Some(Value::Array(windows)) = list {
                let before = windows.len();
                windows.retain(|w| !one_off_named(w));
                removed += before - windows.len();
            }
        };
        drop_from(self.root.get_mut("maintenance"));
        if let Some(Value::Array(sites)) = self.root.get_mut("sites") {
            for s in sites {
                drop_from(s.get_mut("maintenance"));
            }
        }
        if removed == 0 {
            return Err(EditError::NoNamed {
                what: "one-off maintenance window",
                name: name.to_owned(),
            });
        }
        Ok(removed)
    }

    /// The document as the file's new text: indented, keys in their order, a final newline.
    pub fn text(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(&self.root).expect("a JSON value always serialises");
        text.push('\n');
        text
    }

    /// Checks the new text as `check-config` would (secrets from the environment, plugin and
    /// CA files present), and returns what it resolves to.
    pub fn check(&self, path: &Path) -> Result<crate::Config, EditError> {
        Ok(crate::Config::check_text(path, self.text().as_bytes())?)
    }
}

fn object_with_name(site: &Value, expected: Option<&str>) -> Result<String, EditError> {
    if !site.is_object() {
        return Err(EditError::Bad(
            "a site is a JSON object, as in config.json's sites".into(),
        ));
    }
    match (name_of(site), expected) {
        (Some(n), Some(e)) if n != e.trim() => Err(EditError::Bad(
            "name: a site is renamed by deleting it and adding it under the new name".into(),
        )),
        (Some(n), _) if !n.is_empty() => Ok(n.to_owned()),
        (None, Some(e)) => Ok(e.trim().to_owned()),
        _ => Err(EditError::Bad("name: a site needs a name".into())),
    }
}

/// Appends `item` to the list `key` of `on` (made when absent); `field` names it in an error.
fn push_at(
    on: &mut Map<String, Value>,
    key: &str,
    item: Value,
    field: &str,
) -> Result<(), EditError> {
    match on.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(list) => {
            list.push(item);
            Ok(())
        }
        _ => Err(EditError::Bad(format!("{field}: is not a list"))),
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.shift_remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Where a change gives `***` for a header value or a URL's password (what the API shows of
/// them), the file's value stays.
fn keep_hidden(old: &Value, new: &mut Value) {
    if let (Some(Value::Object(old_h)), Some(Value::Object(new_h))) =
        (old.get("headers"), new.get_mut("headers"))
    {
        for (k, v) in new_h.iter_mut() {
            if v.as_str() == Some(HIDDEN)
                && let Some(kept) = old_h.get(k)
            {
                *v = kept.clone();
            }
        }
    }
    if let (Some(Value::String(old_url)), Some(Value::String(new_url))) =
        (old.get("url"), new.get("url"))
        && *new_url == shown_url(old_url)
        && new_url != old_url
    {
        let kept = old_url.clone();
        if let Some(u) = new.get_mut("url") {
            *u = Value::String(kept);
        }
    }
}

/// A URL as the API shows it: its password `***` (a `${NAME}` reference is shown as is).
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.password().is_some_and(|p| !is_reference(p)) => {
            crate::values::masked_url(&u, false)
        }
        _ => url.to_owned(),
    }
}

/// Whether a value is nothing but a `${NAME}` reference (its value is not in the file).
fn is_reference(text: &str) -> bool {
    let t = text.trim();
    let t = t
        .strip_prefix("%24%7B")
        .and_then(|r| r.strip_suffix("%7D"))
        .or_else(|| t.strip_prefix("${").and_then(|r| r.strip_suffix('}')));
    t.is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// A site as the API shows it from the file: header values `***` unless they are only a
/// `${NAME}` reference, and a URL's password likewise.
pub fn shown_site(site: &Value) -> Value {
    let mut shown = site.clone();
    if let Some(Value::Object(h)) = shown.get_mut("headers") {
        for v in h.values_mut() {
            if v.as_str().is_some_and(|s| !is_reference(s)) {
                *v = Value::String(HIDDEN.into());
            }
        }
    }
    if let Some(Value::String(u)) = shown.get_mut("url") {
        *u = shown_url(u);
    }
    shown
}

/// Replaces the file at `path` with `text`, if its hash is still `expected`: a temp file in the
/// same directory (with the file's permissions), written and synced, renamed over it, and the
/// directory synced. Returns the new hash.
pub fn write(path: &Path, text: &str, expected: &str) -> Result<String, EditError> {
    let io = |source| EditError::Io {
        path: path.to_owned(),
        source,
    };
    let now = current_hash(path)?;
    if now != expected {
        return Err(EditError::Stale { now });
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".into());
    let tmp = dir.join(format!(".{file_name}.sitewatch-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        // A hand edit saved while this one was written: keep it, refuse this one.
        if current_hash(path).ok().as_deref() != Some(expected) {
            return Ok(false);
        }
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(true)
    })();
    match result {
        Ok(true) => Ok(hash_of(text.as_bytes())),
        Ok(false) => {
            let _ = std::fs::remove_file(&tmp);
            Err(EditError::Stale {
                now: current_hash(path)?,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEXT: &str = r#"{
  "sites": [
    {"name": "shop", "url": "https://user:pw@shop.test/", "interval": "30s",
     "headers": {"Authorization": "Bearer ${SHOP_TOKEN}", "X-Key": "literal-key"}},
    {"name": "api", "url": "https://api.test/health", "tags": ["prod"]}
  ],
  "alerting": {"window": "5m", "threshold": 0.9}
}"#;

    fn doc() -> Document {
        let dir = tempfile_dir();
        let path = dir.join("config.json");
        std::fs::write(&path, TEXT).unwrap();
        Document::read(&path).unwrap()
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sitewatch-edit-{}-{}",
            std::process::id(),
            fastrand_like()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn fastrand_like() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    #[test]
    fn key_order_and_references_are_kept() {
        let mut d = doc();
        d.set_paused("api", true).unwrap();
        let text = d.text();
        let sites = text.find("\"sites\"").unwrap();
        let alerting = text.find("\"alerting\"").unwrap();
        assert!(sites < alerting, "{text}");
        assert!(text.find("\"window\"").unwrap() < text.find("\"threshold\"").unwrap());
        assert!(text.contains("Bearer ${SHOP_TOKEN}"));
        assert!(text.contains("\"paused\": true"));
        d.set_paused("api", false).unwrap();
        assert!(!d.text().contains("paused"));
    }

    #[test]
    fn sites_are_added_replaced_patched_and_deleted_by_name() {
        let mut d = doc();
        assert!(matches!(
            d.add_site(json!({"name": "api", "url": "https://x.test/"})),
            Err(EditError::Exists(_))
        ));
        d.add_site(json!({"name": "new", "url": "https://new.test/"}))
            .unwrap();
        d.patch_site("api", json!({"interval": "10s", "tags": null}))
            .unwrap();
        let api = d.site("api").unwrap();
        assert_eq!(api["interval"], "10s");
        assert!(api.get("tags").is_none());
        d.replace_site("new", json!({"url": "https://other.test/"}))
            .unwrap();
        assert_eq!(
            d.site("new").unwrap(),
            &json!({"name": "new", "url": "https://other.test/"})
        );
        assert!(matches!(
            d.replace_site("new", json!({"name": "renamed"})),
            Err(EditError::Bad(_))
        ));
        d.delete_site("new").unwrap();
        assert!(matches!(d.delete_site("new"), Err(EditError::NoSite(_))));
    }

    #[test]
    fn secrets_are_shown_hidden_and_hidden_values_keep_the_files() {
        let d = doc();
        let shown = shown_site(d.site("shop").unwrap());
        assert_eq!(shown["headers"]["X-Key"], HIDDEN);
        assert_eq!(shown["headers"]["Authorization"], HIDDEN);
        assert!(!shown.to_string().contains("literal-key"));
        assert!(!shown.to_string().contains(":pw@"), "{shown}");
        // What was shown, given back with a change, keeps the file's values.
        let mut d = d;
        let mut back = shown.clone();
        back["interval"] = json!("1m");
        d.replace_site("shop", back).unwrap();
        let site = d.site("shop").unwrap();
        assert_eq!(site["headers"]["X-Key"], "literal-key");
        assert_eq!(site["headers"]["Authorization"], "Bearer ${SHOP_TOKEN}");
        assert_eq!(site["url"], "https://user:pw@shop.test/");
        assert_eq!(site["interval"], "1m");
        // A reference alone is shown as it is.
        let r = shown_site(&json!({"headers": {"A": "${TOKEN}"}}));
        assert_eq!(r["headers"]["A"], "${TOKEN}");
    }

    #[test]
    fn one_off_windows_go_global_or_to_sites_and_are_deleted_by_name() {
        let mut d = doc();
        let name = d
            .add_maintenance(json!({"start": "2026-12-24T22:00:00Z", "end": "2026-12-25T02:00:00Z", "name": "db"}))
            .unwrap();
        assert_eq!(name, "db");
        d.add_maintenance(json!({"start": "2026-12-24T22:00:00Z", "end": "2026-12-25T02:00:00Z", "name": "db", "sites": ["api"]}))
            .unwrap();
        assert_eq!(d.site("api").unwrap()["maintenance"][0]["name"], "db");
        assert!(matches!(
            d.add_maintenance(json!({"start": "x", "end": "y", "sites": ["nope"]})),
            Err(EditError::NoSite(_))
        ));
        assert!(matches!(
            d.add_maintenance(json!({"cron": "0 2 * * *", "start": "a", "end": "b"})),
            Err(EditError::Bad(_))
        ));
        assert_eq!(d.delete_maintenance("db").unwrap(), 2);
        assert!(matches!(
            d.delete_maintenance("db"),
            Err(EditError::NoNamed { .. })
        ));
    }

    #[test]
    fn a_write_on_a_stale_hash_is_refused_and_the_file_kept() {
        let dir = tempfile_dir();
        let path = dir.join("config.json");
        std::fs::write(&path, TEXT).unwrap();
        let mut d = Document::read(&path).unwrap();
        d.set_paused("api", true).unwrap();
        // A hand edit after the read.
        std::fs::write(&path, TEXT.replace("30s", "45s")).unwrap();
        let e = write(&path, &d.text(), d.hash()).unwrap_err();
        assert_eq!(e.status(), 412);
        assert!(std::fs::read_to_string(&path).unwrap().contains("45s"));
        // On the current hash it is written whole, and no temp file is left.
        let d = Document::read(&path).unwrap();
        let new = write(&path, &d.text(), d.hash()).unwrap();
        assert_eq!(new, current_hash(&path).unwrap());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
