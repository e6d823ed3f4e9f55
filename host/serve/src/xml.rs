//! Text in XML (the badges' SVG, the Atom feed): escaped for content and attribute values, and
//! without the characters XML 1.0 cannot hold.

/// `text` escaped for XML content and attribute values (`&`, `<`, `>`, `"`, `'`), with control
/// characters other than tab and line breaks, U+FFFE and U+FFFF left out.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_and_forbidden_characters_do_not_pass() {
        assert_eq!(
            super::escape("a<b>&\"c'\u{1}\u{FFFF}\n"),
            "a&lt;b&gt;&amp;&quot;c&#39;\n"
        );
    }
}
