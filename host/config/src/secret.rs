//! Secrets: values read from the environment (tokens, passwords, URLs with credentials), held
//! in [`Secret`]s that compare like their value and never print. The config file names
//! variables; it never holds a secret.

use super::FieldError;

pub use sitewatch_core::secret::Secret;

/// Reads an environment variable; the config is resolved with one, so tests need no process
/// environment.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The value of the environment variable `var` named by `field`, trimmed; an error naming the
/// field and the variable (never a value) when it is not set or empty.
pub(crate) fn env_secret(env: Env<'_>, field: &str, var: &str) -> Result<String, FieldError> {
    if var.is_empty() || var.contains('=') {
        return Err((field, "must be the name of an environment variable").into());
    }
    match env(var) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err((
            field,
            format!("names the environment variable {var}, which is not set"),
        )
            .into()),
    }
}
