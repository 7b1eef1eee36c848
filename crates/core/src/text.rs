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

/// Text the way people type it into a search box: lower case, accents off (é → e, ü → u),
/// letters that do not decompose spelled out (ß → ss, ø → o, æ → ae, ł → l), apostrophes
/// dropped inside words (O'Brien → obrien) and other punctuation turned into spaces
/// (Müller-O'Brien → "muller obrien"). The search index holds names folded like this, and
/// searches are folded the same way, so `jose`, `muller` and `obrien` find José Müller-O'Brien
/// and `josé` still finds Jose.
pub fn fold_for_search(text: &str) -> String {
    let decomposed = icu_normalizer::DecomposingNormalizerBorrowed::new_nfd().normalize(text);
    let mut out = String::with_capacity(decomposed.len());
    for c in decomposed.chars() {
        if is_combining_mark(c) {
            continue;
        }
        match c {
            '\'' | '\u{2019}' | '\u{2018}' | '`' | '\u{b4}' | '\u{2bc}' => {}
            'ß' => out.push_str("ss"),
            'ø' | 'Ø' => out.push('o'),
            'æ' | 'Æ' => out.push_str("ae"),
            'œ' | 'Œ' => out.push_str("oe"),
            'ł' | 'Ł' => out.push('l'),
            'đ' | 'Đ' | 'ð' | 'Ð' => out.push('d'),
            'þ' | 'Þ' => out.push_str("th"),
            'ı' => out.push('i'),
            c if c.is_alphanumeric() => out.extend(c.to_lowercase()),
            _ => out.push(' '),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Marks that combine with the letter before them (accents, cedillas, umlauts once
/// decomposed): the blocks Latin, Greek and Cyrillic names use.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{300}'..='\u{36f}'
        | '\u{1ab0}'..='\u{1aff}'
        | '\u{1dc0}'..='\u{1dff}'
        | '\u{20d0}'..='\u{20ff}'
        | '\u{fe20}'..='\u{fe2f}')
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

#[cfg(test)]
mod fold_tests {
    use super::fold_for_search;

    #[test]
    fn accents_case_apostrophes_and_hyphens_fold_the_way_people_type() {
        assert_eq!(fold_for_search("José Müller-O'Brien"), "jose muller obrien");
        assert_eq!(fold_for_search("JOSÉ"), "jose");
        assert_eq!(fold_for_search("Straße Øster Łódź"), "strasse oster lodz");
        assert_eq!(fold_for_search("D’Angelo"), "dangelo");
        assert_eq!(fold_for_search("Ça va, Zoë?"), "ca va zoe");
        assert_eq!(fold_for_search("Ελένη"), "ελενη");
        assert_eq!(fold_for_search("  --  "), "");
    }
}
