//! Text from callers and providers made safe to show: in a popup, the window or a terminal.

/// Characters that reorder or hide text, or drive a terminal: a caller name must not be able
/// to disguise itself or anything shown after it.
pub fn is_invisible_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{061C}'
                | '\u{FEFF}'
        )
}

/// Makes provider text safe to show: no control, bidi or zero-width characters, bounded length.
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| !is_invisible_control(*c))
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.chars().count() <= max_chars {
        trimmed.to_string()
    } else {
        let mut cut: String = trimmed.chars().take(max_chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_hide_or_reorder_text_and_are_bounded() {
        let evil = "Bob\u{202E}evil\u{202C} <b>Boss</b>\n\u{200B}&co";
        assert_eq!(sanitize(evil, 100), "Bobevil <b>Boss</b> &co");
        assert_eq!(sanitize(&"x".repeat(300), 10).chars().count(), 10);
        assert_eq!(sanitize("  \u{7}  ", 10), "");
        assert!(is_invisible_control('\u{FEFF}'));
        assert!(!is_invisible_control('é'));
    }
}
