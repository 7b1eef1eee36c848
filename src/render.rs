//! What the CLI prints: calls as a table or JSON lines, and any text from a sender or a remote
//! server made safe for a terminal.

use chrono::{DateTime, SecondsFormat, Utc};

use callpop_core::model::Call;
use callpop_store::CallRecord;

pub(crate) fn rfc3339(t: Option<DateTime<Utc>>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| {
        serde_json::Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    })
}

/// The documented JSON shape of a call in `callpop calls --json`.
pub(crate) fn call_json(r: &CallRecord) -> serde_json::Value {
    let c = &r.call;
    serde_json::json!({
        "id": r.id,
        "provider": c.provider.as_str(),
        "call_key": c.call_key,
        "direction": c.direction.as_str(),
        "state": c.state.as_str(),
        "result": c.result.map(|r| r.as_str()),
        "from": c.from.raw,
        "from_e164": c.from.e164,
        "from_name": c.from.name,
        "to": c.to.raw,
        "to_e164": c.to.e164,
        "to_name": c.to.name,
        "extensions": c.extensions,
        "started_at": rfc3339(Some(c.started_at)),
        "answered_at": rfc3339(c.answered_at),
        "ended_at": rfc3339(c.ended_at),
        "ring_seconds": c.ring_seconds,
        "talk_seconds": c.talk_seconds,
        "recording_url": c.recording_url,
        "voicemail_id": c.voicemail.as_ref().and_then(|v| v.message_id.clone()),
        "voicemail_seconds": c.voicemail.as_ref().and_then(|v| v.seconds),
        "voicemail_url": c.voicemail.as_ref().and_then(|v| v.url.clone()),
        "event_count": c.event_count,
        "last_event_at": rfc3339(Some(c.last_event_at)),
        "updated_at": rfc3339(Some(r.updated_at)),
    })
}

/// Text from a sender or a remote server as it may go to a terminal: control characters (which
/// move the cursor or recolour the screen) and bidi or zero-width characters (which reorder or
/// hide what follows on the line) are dropped. JSON output escapes them instead; CSV drops them
/// on a terminal and keeps them when written to a file or a pipe.
pub(crate) fn shown(text: &str) -> String {
    callpop_core::text::sanitize(text, usize::MAX)
}

/// `value` as one line of JSON that is safe on a terminal: the characters [`shown`] drops are
/// written as `\uXXXX` escapes instead (outside strings JSON has none), so the data is exact.
pub(crate) fn json_line(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if !text.chars().any(callpop_core::text::is_invisible_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 32);
    for c in text.chars() {
        if callpop_core::text::is_invisible_control(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn party_label(
    number: &Option<String>,
    e164: &Option<String>,
    name: &Option<String>,
) -> String {
    let number = e164.clone().or_else(|| number.clone());
    match (name, number) {
        (Some(n), Some(num)) => format!("{n} {num}"),
        (Some(n), None) => n.clone(),
        (None, Some(num)) => num,
        (None, None) => "Unknown caller".into(),
    }
}

pub(crate) fn extensions_label(c: &Call) -> String {
    c.extensions
        .iter()
        .filter_map(|p| p.label())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        format!("{s:<width$}")
    } else {
        let cut: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_text_cannot_reorder_or_drive_the_terminal() {
        let evil = "Bob \u{202E}exe.txt\u{202C} \u{1b}[2J\u{9b}31m\u{7f}\u{2066}x\u{2069}\u{200B}\nnext <b>";
        let line = shown(evil);
        assert_eq!(line, "Bob exe.txt [2J31mx next <b>");
        assert!(!line.chars().any(callpop_core::text::is_invisible_control));
        // The table cuts after cleaning, so a hidden character never counts towards the width.
        assert_eq!(truncate(&shown("\u{202E}\u{202E}abc"), 3), "abc");
    }

    #[test]
    fn json_lines_escape_what_could_disturb_a_terminal_and_keep_the_data() {
        let value = serde_json::json!({
            "from_name": "Bob \u{202E}exe.txt\u{202C}\u{7f}\u{9b}\u{0}\u{1b}[2J",
            "note": "plain café ☎",
            "\u{202E}key": [1, "\u{2067}"],
        });
        let line = json_line(&value);
        assert!(
            !line
                .chars()
                .any(|c| callpop_core::text::is_invisible_control(c) || c == '\n'),
            "{line:?}"
        );
        assert!(line.contains("\\u202e") && line.contains("\\u007f") && line.contains("\\u009b"));
        assert!(
            line.contains("plain café ☎"),
            "ordinary text is left alone: {line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).expect("still JSON");
        assert_eq!(back, value);
        let plain = serde_json::json!({"a": "b"});
        assert_eq!(json_line(&plain), plain.to_string());
    }
}
