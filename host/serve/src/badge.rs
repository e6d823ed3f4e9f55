//! Badges for READMEs and wikis: `/badge/{site}/status.svg`, `/badge/{site}/uptime.svg` and
//! `/badge/{site}/response.svg`, drawn in shields.io's flat style (a grey label, a value coloured
//! by state), with the text for screen readers (`role="img"`, `aria-label`, `<title>`).
//! The uptime and response figures are the `report` command's for the period; each answer is
//! kept a minute (here, and by clients: `Cache-Control: max-age=60`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a badge is reused.
pub(crate) const TTL: Duration = Duration::from_secs(60);
/// The most badges kept; beyond it the cache starts over (a client asking for many periods
/// cannot grow it without bound).
const MAX_KEPT: usize = 1024;

/// shields.io's colours.
pub(crate) mod colour {
    pub const BRIGHTGREEN: &str = "#4c1";
    pub const GREEN: &str = "#97ca00";
    pub const YELLOW: &str = "#dfb317";
    pub const ORANGE: &str = "#fe7d37";
    pub const RED: &str = "#e05d44";
    pub const BLUE: &str = "#007ec6";
    pub const LIGHTGREY: &str = "#9f9f9f";
    pub const LABEL: &str = "#555";
}

/// A badge's two halves.
#[derive(Debug, Clone, PartialEq)]
pub struct Badge {
    pub label: String,
    pub value: String,
    pub colour: &'static str,
}

/// The colour of a live state (as the status page names them).
pub fn state_colour(state: &str) -> &'static str {
    match state {
        "up" => colour::BRIGHTGREEN,
        "down" => colour::RED,
        "degraded" => colour::YELLOW,
        "maintenance" => colour::BLUE,
        _ => colour::LIGHTGREY,
    }
}

/// Availability in percent, as the badge shows it (two decimals, as `report` prints it), and its
/// colour.
pub fn uptime(label: String, availability: Option<f64>) -> Badge {
    match availability {
        None => Badge {
            label,
            value: "no data".into(),
            colour: colour::LIGHTGREY,
        },
        Some(a) => {
            let pct = a * 100.0;
            let colour = if pct >= 99.9 {
                colour::BRIGHTGREEN
            } else if pct >= 99.0 {
                colour::GREEN
            } else if pct >= 95.0 {
                colour::YELLOW
            } else if pct >= 90.0 {
                colour::ORANGE
            } else {
                colour::RED
            };
            Badge {
                label,
                value: format!("{pct:.2}%"),
                colour,
            }
        }
    }
}

/// The average response time in milliseconds, whole, and its colour.
pub fn response(label: String, avg_ms: Option<f64>) -> Badge {
    match avg_ms {
        None => Badge {
            label,
            value: "no data".into(),
            colour: colour::LIGHTGREY,
        },
        Some(ms) => {
            let colour = if ms < 200.0 {
                colour::BRIGHTGREEN
            } else if ms < 500.0 {
                colour::GREEN
            } else if ms < 1000.0 {
                colour::YELLOW
            } else if ms < 2000.0 {
                colour::ORANGE
            } else {
                colour::RED
            };
            Badge {
                label,
                value: format!("{} ms", ms.round() as u64),
                colour,
            }
        }
    }
}

/// The width of `text` in pixels at 11 px Verdana, near enough: shields.io measures each glyph;
/// an average per class of character keeps the text inside its box.
fn text_width(text: &str) -> u32 {
    let w: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '|' | '!' | '\'' | ' ' => 3.5,
            'f' | 'r' | 't' | '(' | ')' | '[' | ']' | '-' => 4.5,
            'm' | 'w' | 'M' | 'W' | '%' => 10.0,
            c if c.is_ascii_uppercase() || c.is_ascii_digit() => 7.5,
            _ => 7.0,
        })
        .sum();
    w.ceil() as u32
}

/// The badge as an SVG document.
pub fn render(b: &Badge) -> String {
    let (lw, vw) = (text_width(&b.label) + 10, text_width(&b.value) + 10);
    let width = lw + vw;
    let (label, value) = (crate::xml::escape(&b.label), crate::xml::escape(&b.value));
    let (lx, vx) = (lw * 5, lw * 10 + vw * 5);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="{lcol}"/><rect x="{lw}" width="{vw}" height="20" fill="{vcol}"/><rect width="{width}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110"><text aria-hidden="true" x="{lx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{label}</text><text x="{lx}" y="140" transform="scale(.1)">{label}</text><text aria-hidden="true" x="{vx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{value}</text><text x="{vx}" y="140" transform="scale(.1)">{value}</text></g></svg>"##,
        lcol = colour::LABEL,
        vcol = b.colour,
    )
}

/// Badges drawn in the last minute, by what was asked.
#[derive(Debug, Default)]
pub struct Cache {
    kept: Mutex<HashMap<String, (Instant, String)>>,
}

impl Cache {
    /// The badge kept for `key` if it is younger than [`TTL`].
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, svg)| svg.clone())
    }

    pub(crate) fn put(&self, key: String, svg: String) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_KEPT {
            kept.retain(|_, (at, _)| at.elapsed() < TTL);
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
        }
        kept.insert(key, (Instant::now(), svg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_coloured_by_how_good_they_are() {
        assert_eq!(uptime("u".into(), Some(1.0)).colour, colour::BRIGHTGREEN);
        assert_eq!(uptime("u".into(), Some(0.995)).value, "99.50%");
        assert_eq!(uptime("u".into(), Some(0.995)).colour, colour::GREEN);
        assert_eq!(uptime("u".into(), Some(0.5)).colour, colour::RED);
        assert_eq!(uptime("u".into(), None).value, "no data");
        assert_eq!(response("r".into(), Some(123.4)).value, "123 ms");
        assert_eq!(response("r".into(), Some(2500.0)).colour, colour::RED);
        assert_eq!(state_colour("down"), colour::RED);
        assert_eq!(state_colour("paused"), colour::LIGHTGREY);
    }

    #[test]
    fn the_svg_carries_its_text_for_readers_and_escapes_it() {
        let svg = render(&Badge {
            label: "status".into(),
            value: "<up & \"ok\">".into(),
            colour: colour::BRIGHTGREEN,
        });
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("<title>status: &lt;up &amp; &quot;ok&quot;&gt;</title>"));
        assert!(!svg.contains("<up"));
        assert!(svg.contains(r##"fill="#4c1""##));
    }

    #[test]
    fn a_badge_is_kept_a_minute() {
        let c = Cache::default();
        assert_eq!(c.get("a"), None);
        c.put("a".into(), "<svg/>".into());
        assert_eq!(c.get("a").as_deref(), Some("<svg/>"));
    }
}
