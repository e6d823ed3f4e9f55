//! `${NAME}` in config text: replaced by the environment variable NAME when the config is
//! loaded (and at every reload). Used for site URLs, site header values and notifier header
//! values. `$${` is a literal `${`. A variable that is not set, or is empty, is an error naming
//! it; the value itself never appears in a message.

use super::FieldError;
use super::secret::{Env, Secret};

/// Text with its variables expanded.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Expanded {
    /// The text to use (holds the variables' values).
    pub value: String,
    /// The values of the variables it used, in order (empty: nothing came from the
    /// environment), for redacting whatever might echo them.
    pub secrets: Vec<Secret<String>>,
}

impl std::fmt::Debug for Expanded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Expanded([secret])")
    }
}

impl Expanded {
    /// Whether anything came from the environment.
    pub(crate) fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }
}

/// Expands `${NAME}` (letters, digits and `_`, not starting with a digit) in `text`, with each
/// value read by `env` and trimmed. `$${` stands for a literal `${`. Errors name `field`.
pub(super) fn expand(text: &str, field: &str, env: Env<'_>) -> Result<Expanded, FieldError> {
    let mut value = String::with_capacity(text.len());
    let mut secrets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        value.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            value.push_str("${");
            rest = tail;
            continue;
        }
        let Some(inner) = after.strip_prefix("${") else {
            value.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = inner.find('}') else {
            return Err((
                field,
                "has \"${\" without a closing \"}\" (write $${ for a literal ${)",
            )
                .into());
        };
        let name = &inner[..end];
        if !is_variable_name(name) {
            return Err((
                field,
                format!(
                    "\"${{{name}}}\" is not a variable reference: a name is letters, digits and _, not starting with a digit (write $${{ for a literal ${{)"
                ),
            )
                .into());
        }
        match env(name).map(|v| v.trim().to_owned()) {
            Some(v) if !v.is_empty() => {
                value.push_str(&v);
                secrets.push(Secret::new(v));
            }
            Some(_) => {
                return Err((
                    field,
                    format!("names the environment variable {name}, which is empty"),
                )
                    .into());
            }
            None => {
                return Err((
                    field,
                    format!("names the environment variable {name}, which is not set"),
                )
                    .into());
            }
        }
        rest = &inner[end + 1..];
    }
    value.push_str(rest);
    Ok(Expanded { value, secrets })
}

/// The names of the `${NAME}` placeholders in `text`, in order, without repeats (`$${` is a
/// literal `${`; a malformed reference is not a name).
pub(crate) fn placeholders(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            rest = tail;
            continue;
        }
        let Some(inner) = after.strip_prefix("${") else {
            rest = &after[1..];
            continue;
        };
        let Some(end) = inner.find('}') else { break };
        let name = &inner[..end];
        if is_variable_name(name) && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        rest = &inner[end + 1..];
    }
    names
}

pub(crate) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` with each of `secrets` replaced by `***`, longest first (so a value that contains
/// another is replaced whole).
pub(crate) fn redact(text: &str, secrets: &[Secret<String>]) -> String {
    let mut values: Vec<&str> = secrets
        .iter()
        .map(|s| s.expose().as_str())
        .filter(|s| !s.is_empty())
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_owned();
    for v in values {
        if out.contains(v) {
            out = out.replace(v, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_named_once_in_order() {
        assert_eq!(
            placeholders(r#"{"p": "${PW}", "u": "${USER}x${PW}", "l": "$${NOT}", "b": "${1X}"}"#),
            ["PW", "USER"]
        );
        assert!(placeholders("no ${ end").is_empty());
    }

    fn env(var: &str) -> Option<String> {
        match var {
            "KEY" => Some("s3cr3t".into()),
            "HOST" => Some(" api.internal \n".into()),
            "EMPTY" => Some("  ".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<Expanded, String> {
        expand(text, "sites[0].url", &env).map_err(|e| format!("{}: {}", e.field, e.message))
    }

    #[test]
    fn variables_are_replaced_and_their_values_kept_for_redaction() {
        let e = run("https://${HOST}/x?key=${KEY}&k2=${KEY}").unwrap();
        assert_eq!(e.value, "https://api.internal/x?key=s3cr3t&k2=s3cr3t");
        assert_eq!(e.secrets.len(), 3);
        assert!(e.has_secrets());
        assert_eq!(format!("{e:?}"), "Expanded([secret])");
        let plain = run("https://example.com/$5?a=$b").unwrap();
        assert_eq!(plain.value, "https://example.com/$5?a=$b");
        assert!(!plain.has_secrets());
    }

    #[test]
    fn a_doubled_dollar_is_a_literal() {
        let e = run("https://example.com/$${KEY}/${KEY}").unwrap();
        assert_eq!(e.value, "https://example.com/${KEY}/s3cr3t");
        assert_eq!(e.secrets.len(), 1);
        assert!(!run("a $${B} c").unwrap().has_secrets());
    }

    #[test]
    fn errors_name_the_field_and_the_variable_never_a_value() {
        assert_eq!(
            run("https://x/${NOPE}").unwrap_err(),
            "sites[0].url: names the environment variable NOPE, which is not set"
        );
        assert_eq!(
            run("https://x/${EMPTY}").unwrap_err(),
            "sites[0].url: names the environment variable EMPTY, which is empty"
        );
        assert!(
            run("https://x/${KEY")
                .unwrap_err()
                .contains("without a closing")
        );
        assert!(
            run("https://x/${1X}")
                .unwrap_err()
                .contains("\"${1X}\" is not a variable reference")
        );
        assert!(run("${}").is_err() && run("${A-B}").is_err());
    }

    #[test]
    fn redaction_replaces_the_longest_value_first() {
        let secrets = [
            Secret::new("abc".to_owned()),
            Secret::new("abcdef".to_owned()),
        ];
        assert_eq!(redact("x abcdef y abc", &secrets), "x *** y ***");
        assert_eq!(redact("nothing", &[]), "nothing");
    }
}
