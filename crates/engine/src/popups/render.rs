//! What people read on a popup: caller, line, desks, buttons, and the summary popup that
//! stands for calls beyond the on-screen limit.

use chrono::Local;

use callpop_core::lines::line_label;
use callpop_core::model::{Call, CallDirection, CallResult, LegDirection};
use callpop_core::numbers::format_for_display;
use callpop_core::text::sanitize;

use super::policy::watched_parts;
use super::{Phase, PopupSettings};
use crate::notify::{escape_markup, Capabilities, Popup, Urgency};

/// The "Open in CRM" link for a call (`callpop_core::crm`, shared with the window).
pub fn crm_url(template: &str, call: &Call) -> Option<String> {
    callpop_core::crm::link(template, call)
}

/// Renders what people read on a popup.
pub struct Renderer<'a> {
    /// Settings (labels, template, window).
    pub settings: &'a PopupSettings,
    /// What the server supports (escaping, buttons).
    pub capabilities: &'a Capabilities,
}

impl Renderer<'_> {
    fn caller(&self, call: &Call) -> (String, Option<String>) {
        let number = call
            .from
            .e164
            .as_deref()
            .map(format_for_display)
            .or_else(|| call.from.raw.clone())
            .map(|n| sanitize(&n, 40))
            .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("anonymous"));
        let name = call
            .from
            .name
            .as_deref()
            .map(|n| sanitize(n, 60))
            .filter(|n| !n.is_empty());
        match (name, number) {
            (Some(name), number) => (name, number),
            (None, Some(number)) => (number, None),
            (None, None) => ("Unknown caller".to_string(), None),
        }
    }

    fn line(&self, call: &Call) -> Option<String> {
        let dialled = call.to.e164.as_deref()?;
        Some(match line_label(&self.settings.line_labels, dialled) {
            Some(l) => sanitize(&l.label, 40),
            None => format_for_display(dialled),
        })
    }

    fn desks(&self, call: &Call) -> Option<String> {
        let parts = watched_parts(call, &self.settings.watch_extensions);
        let labels: Vec<String> = parts
            .iter()
            .filter_map(|p| p.extension_number.clone())
            .map(|n| sanitize(&n, 12))
            .collect();
        (!labels.is_empty()).then(|| format!("ext {}", labels.join(", ")))
    }

    fn body(&self, lines: &[String]) -> String {
        let text = lines
            .iter()
            .filter(|l| !l.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        if self.capabilities.body_markup {
            escape_markup(&text)
        } else {
            text
        }
    }

    fn actions(&self, call: &Call) -> Vec<(String, String)> {
        let mut actions = Vec::new();
        if self.settings.window_available {
            // "default" is the freedesktop key for clicking the notification itself.
            actions.push(("default".to_string(), "Open".to_string()));
        }
        if call.from.e164.is_some() {
            actions.push(("call-back".to_string(), "Call back".to_string()));
        }
        let template = self.settings.crm_url_template.as_deref().unwrap_or("");
        if crm_url(template, call).is_some() {
            actions.push(("crm".to_string(), "Open in CRM".to_string()));
        }
        actions
    }

    /// The popup for `call` in `phase`.
    pub fn render(&self, call: &Call, phase: Phase) -> Popup {
        let (who, number) = self.caller(call);
        let to = [self.line(call).map(|l| format!("to {l}")), self.desks(call)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · ");
        let icon = self.settings.icon.clone();
        match phase {
            Phase::Ringing => Popup {
                summary: match call.direction {
                    CallDirection::Internal => format!("Internal call from {who}"),
                    _ => format!("Incoming call from {who}"),
                },
                body: self.body(&[number.unwrap_or_default(), to]),
                actions: self.actions(call),
                urgency: Urgency::Critical,
                timeout: None,
                icon,
            },
            Phase::Answered => {
                // This desk if it answered, else whoever took the call last (after a transfer
                // that is not the reception desk that answered first).
                let answering: Vec<_> = call
                    .extensions
                    .iter()
                    .filter(|p| p.answered && p.direction != Some(LegDirection::Outbound))
                    .collect();
                let watched = &self.settings.watch_extensions;
                let by = answering
                    .iter()
                    .find(|p| !watched.is_empty() && p.matches_extension(watched))
                    .or(answering.last())
                    .map(|p| {
                        let name = p.name.as_deref().map(|n| sanitize(n, 40));
                        match (name, p.extension_number.as_deref()) {
                            (Some(n), Some(x)) => format!("{n} ({x})"),
                            (Some(n), None) => n,
                            (None, Some(x)) => format!("ext {x}"),
                            (None, None) => "a colleague".into(),
                        }
                    })
                    .unwrap_or_else(|| "a colleague".into());
                let caller = match number {
                    Some(n) => format!("{who} · {n}"),
                    None => who,
                };
                Popup {
                    summary: format!("Answered by {by}"),
                    body: self.body(&[caller, to]),
                    actions: self.actions(call),
                    urgency: Urgency::Normal,
                    timeout: Some(self.settings.answered_close_after),
                    icon,
                }
            }
            Phase::Missed => {
                let when = call
                    .started_at
                    .with_timezone(&Local)
                    .format("%H:%M")
                    .to_string();
                let voicemail = call.voicemail.as_ref().map(|v| match v.seconds {
                    Some(s) => format!("Voicemail left ({s} s)"),
                    None => "Voicemail left".to_string(),
                });
                let voicemail = voicemail.or_else(|| {
                    (call.result == Some(CallResult::Voicemail)).then(|| "Went to voicemail".into())
                });
                Popup {
                    summary: format!("Missed call from {who}"),
                    body: self.body(&[
                        number.unwrap_or_default(),
                        [to, format!("at {when}")]
                            .into_iter()
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join(" · "),
                        voicemail.unwrap_or_default(),
                    ]),
                    actions: self.actions(call),
                    urgency: Urgency::Critical,
                    timeout: None,
                    icon,
                }
            }
        }
    }

    /// One line naming a caller, for the summary popup: name and number, or what is known.
    pub fn caller_line(&self, call: &Call) -> String {
        match self.caller(call) {
            (who, Some(number)) => format!("{who} · {number}"),
            (who, None) => who,
        }
    }

    /// The one popup that stands for calls beyond the on-screen limit, naming the newest
    /// callers (`ringing` and `missed` are caller lines, newest first).
    pub fn summary(&self, ringing: &[&str], missed: &[&str]) -> Popup {
        /// Callers named before "and N more": a popup has room for a few lines.
        const NAMED: usize = 4;
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let summary = match (ringing.len(), missed.len()) {
            (0, m) => plural(m, "missed call"),
            (r, 0) => plural(r, "more incoming call"),
            (r, m) => format!(
                "{}, {}",
                plural(r, "more incoming call"),
                plural(m, "missed call")
            ),
        };
        let listed = ringing
            .iter()
            .map(|c| format!("Ringing: {c}"))
            .chain(missed.iter().map(|c| format!("Missed: {c}")));
        let mut lines: Vec<String> = listed.take(NAMED).collect();
        let rest = ringing.len() + missed.len() - lines.len();
        if rest > 0 {
            lines.push(format!("and {rest} more"));
        }
        if self.settings.window_available {
            lines.push("Open CallPop to see them".to_string());
        }
        let body = lines;
        Popup {
            summary,
            body: self.body(&body),
            actions: if self.settings.window_available {
                vec![("default".into(), "Open".into())]
            } else {
                Vec::new()
            },
            urgency: Urgency::Critical,
            timeout: None,
            icon: self.settings.icon.clone(),
        }
    }

    /// A notice about CallPop itself (not a call): plain, expiring, without buttons.
    pub fn notice(&self, summary: &str, body: &str) -> Popup {
        Popup {
            summary: sanitize(summary, 120),
            body: self.body(&[sanitize(body, 400)]),
            actions: Vec::new(),
            urgency: Urgency::Normal,
            timeout: Some(std::time::Duration::from_secs(12)),
            icon: self.settings.icon.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::popups::fixtures::call;
    use callpop_core::lines::LineLabel;
    use callpop_core::model::{CallResult, CallState, LegState};

    #[test]
    fn popup_text_is_escaped_labelled_and_actionable() {
        let settings = PopupSettings {
            line_labels: vec![LineLabel {
                number: "(650) 555-0100".into(),
                label: "Sales".into(),
            }],
            crm_url_template: Some("https://crm.example/find?phone={e164}&n={name}".into()),
            window_available: true,
            ..PopupSettings::default()
        };
        let caps = Capabilities {
            actions: true,
            body_markup: true,
            persistence: true,
            server: "test".into(),
        };
        let r = Renderer {
            settings: &settings,
            capabilities: &caps,
        };
        let c = call(CallState::Ringing, None, LegState::Ringing);
        let p = r.render(&c, Phase::Ringing);
        assert_eq!(p.summary, "Incoming call from Jane <b>Roe</b>");
        assert_eq!(p.body, "+1 415 555 0123\nto Sales · ext 101");
        assert!(p.actions.iter().any(|(k, _)| k == "call-back"));
        assert!(p.actions.iter().any(|(k, _)| k == "crm"));
        let mut markup = c.clone();
        markup.from.e164 = None;
        markup.from.raw = Some("<i>x</i>".into());
        markup.from.name = None;
        let p = r.render(&markup, Phase::Missed);
        assert!(p.summary.starts_with("Missed call from"));
        assert!(!p.body.contains("<i>"), "{}", p.body);
        assert_eq!(
            crm_url(settings.crm_url_template.as_deref().unwrap_or_default(), &c).as_deref(),
            Some("https://crm.example/find?phone=%2B14155550123&n=Jane%20%3Cb%3ERoe%3C%2Fb%3E")
        );
        let answered = call(
            CallState::Connected,
            Some(CallResult::Answered),
            LegState::Connected,
        );
        assert_eq!(
            r.render(&answered, Phase::Answered).summary,
            "Answered by Alice Sales (101)"
        );
        let three = ["A · 1", "B · 2", "C · 3"];
        assert_eq!(r.summary(&three, &[]).summary, "3 more incoming calls");
        assert_eq!(r.summary(&[], &["A"]).summary, "1 missed call");
        // The summary names the newest callers: `callpop serve` has no window to open.
        let both = r.summary(&three, &["D · 4", "E"]);
        assert_eq!(both.summary, "3 more incoming calls, 2 missed calls");
        let lines: Vec<&str> = both.body.lines().collect();
        assert_eq!(lines[0], "Ringing: A · 1");
        assert_eq!(lines[3], "Missed: D · 4");
        assert_eq!(lines[4], "and 1 more");
        assert_eq!(r.caller_line(&c), "Jane <b>Roe</b> · +1 415 555 0123");
    }
}
