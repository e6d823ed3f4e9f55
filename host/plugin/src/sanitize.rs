//! What comes back from a plugin is untrusted: text is length-capped and stripped of control
//! characters (no terminal escape injection), metric names are reduced to a safe alphabet.

/// Caps `s` at `max` characters and replaces control characters (including ESC) with spaces.
pub fn sanitize_text(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Metric names: at most 64 characters of `[a-z0-9._-]`; anything else becomes `_`.
pub fn sanitize_metric_name(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Most metrics one plugin call (a check, a scenario's run) may add to a measurement.
pub(crate) const MAX_METRICS: usize = 32;

/// The metrics a plugin reported, as a measurement keeps them: finite values only, at most
/// [`MAX_METRICS`], names made safe.
pub(crate) fn kept_metrics(
    metrics: Vec<crate::bindings::types::Metric>,
) -> impl Iterator<Item = (String, f64)> {
    metrics
        .into_iter()
        .filter(|m| m.value.is_finite())
        .take(MAX_METRICS)
        .map(|m| (sanitize_metric_name(&m.name), m.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_lengths_are_neutralised() {
        assert_eq!(sanitize_text("ok\x1b[31mred\x07\n", 100), "ok [31mred  ");
        assert_eq!(sanitize_text("abcdef", 3), "abc…");
        assert_eq!(
            sanitize_metric_name("JSON.Latency ms/é"),
            "json.latency_ms__"
        );
        assert_eq!(sanitize_metric_name(&"x".repeat(100)).len(), 64);
    }
}
