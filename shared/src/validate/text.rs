//! Free text a person writes (a description, a reason): what it may not hold.

/// Characters that would hide or reorder text when it is shown: controls, and Unicode's
/// invisible formatting (zero-width, bidirectional overrides and isolates, BOM, soft hyphen,
/// Arabic letter mark). One rule for every body that takes free text (engagements, webhooks).
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{061c}' | '\u{00ad}')
}

/// The first hidden character of `s`, if any.
pub fn first_hidden(s: &str) -> Option<char> {
    s.chars().find(|c| hidden(*c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_invisible_formatting_are_hidden_and_plain_text_is_not() {
        for c in [
            '\n', '\u{7}', '\u{200b}', '\u{202e}', '\u{2066}', '\u{feff}', '\u{00ad}',
        ] {
            assert!(hidden(c), "{c:?}");
        }
        assert_eq!(first_hidden("Q4 külső pentest — ügyfél 42"), None);
        assert_eq!(first_hidden("ok\u{202e}txt.exe"), Some('\u{202e}'));
    }
}
