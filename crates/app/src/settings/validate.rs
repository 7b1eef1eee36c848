//! Checking what the window sends back, with a message per field, before anything is saved.

use callpop_core::numbers::{Country, PhoneNumber};
use callpop_engine::config::{
    validate_crm_template, validate_public_url, validate_ringcentral_server,
};

use super::*;

fn valid_domain(d: &str) -> bool {
    let d = d.trim();
    !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl SettingsUpdate {
    /// The changes that move call data or credentials somewhere new, to be confirmed first
    /// (empty once [`SettingsUpdate::confirmed`] is set). The tunnel's own URL and the
    /// WebSocket switch-over change without asking: CallPop chose those addresses itself.
    pub fn confirmations(&self, current: &SettingsView) -> Vec<Confirmation> {
        if self.confirmed {
            return Vec::new();
        }
        let mut asks = Vec::new();
        if let Some((from, to)) = self.public_url_change(current) {
            asks.push(Confirmation {
                field: "tunnel.public_url".into(),
                question: match from {
                    Some(from) => format!(
                        "Send every call event to {to} instead of {from}? RingCentral's subscription \
                         moves there, with the webhook tokens."
                    ),
                    None => format!(
                        "Send every call event to {to}? RingCentral's subscription moves there, \
                         with the webhook tokens."
                    ),
                },
            });
        }
        let server = self.ringcentral.server.trim().trim_end_matches('/');
        let has_credentials = current.ringcentral.client_secret_set || current.ringcentral.jwt_set;
        let entered = self.ringcentral.client_secret.is_some() && self.ringcentral.jwt.is_some();
        if has_credentials
            && !entered
            && !callpop_ringcentral::servers::credentials_carry_over(
                &current.ringcentral.server,
                server,
            )
        {
            asks.push(Confirmation {
                field: "ringcentral.server".into(),
                question: format!(
                    "{server} is not a RingCentral server. The stored client secret and JWT will be \
                     removed so they are never sent there; enter the credentials for {server} again. \
                     Continue?"
                ),
            });
        }
        asks
    }

    /// The provided public URL before and after this update, when it changes.
    pub fn public_url_change(&self, current: &SettingsView) -> Option<(Option<String>, String)> {
        if self.tunnel.mode != TunnelModeView::Provided {
            return None;
        }
        let to = validate_public_url(&self.tunnel.public_url).ok()?;
        let from = validate_public_url(&current.tunnel.public_url)
            .ok()
            .filter(|_| current.tunnel.mode == TunnelModeView::Provided);
        (from.as_deref() != Some(to.as_str())).then_some((from, to))
    }

    /// Checks every field; returns one message per bad field, all of them at once.
    pub fn validate(&self, current: &SettingsView) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        self.check_ringcentral(current, &mut errors);
        self.check_tunnel(current, &mut errors);
        self.check_extensions(&mut errors);
        let country = self.check_country(&mut errors);
        // With the country itself wrong, numbers are read as the current country reads them,
        // so that only the country is reported.
        let numbers_country =
            country.or_else(|| Country::from_iso(&current.general.default_country));
        self.check_line_labels(numbers_country, &mut errors);
        self.check_popups(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn check_ringcentral(&self, current: &SettingsView, errors: &mut Vec<FieldError>) {
        if validate_ringcentral_server(&self.ringcentral.server).is_err() {
            errors.push(FieldError::new(
                "ringcentral.server",
                "use https://platform.ringcentral.com (or http://127.0.0.1:PORT for a test platform on this machine)",
            ));
        }
        let id = self.ringcentral.client_id.trim();
        if !id.is_empty() && (id.len() > 128 || id.chars().any(char::is_whitespace)) {
            errors.push(FieldError::new(
                "ringcentral.client_id",
                "a client id has no spaces",
            ));
        }
        let has_secret = secret_given(
            &self.ringcentral.client_secret,
            current.ringcentral.client_secret_set,
        );
        let has_jwt = secret_given(&self.ringcentral.jwt, current.ringcentral.jwt_set);
        if (has_secret || has_jwt) && id.is_empty() {
            errors.push(FieldError::new(
                "ringcentral.client_id",
                "the client id is needed with a secret or JWT",
            ));
        }
        if let Some(jwt) = self
            .ringcentral
            .jwt
            .as_deref()
            .filter(|j| !j.trim().is_empty())
        {
            if jwt.trim().split('.').count() != 3 {
                errors.push(FieldError::new(
                    "ringcentral.jwt",
                    "a JWT has three parts separated by dots",
                ));
            }
        }
    }

    /// Only the chosen mode's fields are checked.
    fn check_tunnel(&self, current: &SettingsView, errors: &mut Vec<FieldError>) {
        match self.tunnel.mode {
            TunnelModeView::Ngrok => {
                if !secret_given(
                    &self.tunnel.ngrok_authtoken,
                    current.tunnel.ngrok_authtoken_set,
                ) {
                    errors.push(FieldError::new(
                        "tunnel.ngrok_authtoken",
                        "paste the ngrok authtoken from the ngrok dashboard",
                    ));
                }
                if !self.tunnel.ngrok_domain.trim().is_empty()
                    && !valid_domain(&self.tunnel.ngrok_domain)
                {
                    errors.push(FieldError::new(
                        "tunnel.ngrok_domain",
                        "a domain such as desk-42.ngrok.app (leave empty for a random one)",
                    ));
                }
            }
            TunnelModeView::Provided => {
                if let Err(m) = validate_public_url(&self.tunnel.public_url) {
                    errors.push(FieldError::new("tunnel.public_url", m.to_string()));
                }
            }
            TunnelModeView::Off => {}
        }
    }

    fn check_extensions(&self, errors: &mut Vec<FieldError>) {
        for (i, ext) in self.watch_extensions.iter().enumerate() {
            let e = ext.trim();
            if e.is_empty() || e.len() > 20 || !e.chars().all(|c| c.is_ascii_digit()) {
                errors.push(FieldError::new(
                    format!("watch_extensions.{i}"),
                    "an extension number or id is digits only",
                ));
            }
        }
    }

    /// The country asked for, when CallPop supports it.
    fn check_country(&self, errors: &mut Vec<FieldError>) -> Option<Country> {
        let country = Country::from_iso(&self.general.default_country);
        if country.is_none() {
            errors.push(FieldError::new(
                "general.default_country",
                format!(
                    "choose one of {}",
                    Country::supported().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        country
    }

    /// Each label needs a number (read as `country` reads it) no other label has, and a
    /// short name.
    fn check_line_labels(&self, country: Option<Country>, errors: &mut Vec<FieldError>) {
        let mut seen = Vec::new();
        for (i, l) in self.line_labels.iter().enumerate() {
            let n = country.map(|c| PhoneNumber::parse(&l.number, &c));
            let key = n
                .as_ref()
                .and_then(|n| n.e164.clone().or(n.extension.clone()));
            match key {
                None => errors.push(FieldError::new(
                    format!("line_labels.{i}.number"),
                    "a phone number such as +1 650 555 0100",
                )),
                Some(k) if seen.contains(&k) => errors.push(FieldError::new(
                    format!("line_labels.{i}.number"),
                    "this number already has a label",
                )),
                Some(k) => seen.push(k),
            }
            let label = l.label.trim();
            if label.is_empty() || label.chars().count() > 40 {
                errors.push(FieldError::new(
                    format!("line_labels.{i}.label"),
                    "a short name such as Sales (up to 40 characters)",
                ));
            }
        }
    }

    fn check_popups(&self, errors: &mut Vec<FieldError>) {
        let p = &self.popups;
        if let Some(q) = &p.quiet_hours {
            let mut times = Vec::new();
            for (part, v) in [("start", &q.start), ("end", &q.end)] {
                match chrono::NaiveTime::parse_from_str(v.trim(), "%H:%M") {
                    Ok(t) => times.push(t),
                    Err(_) => errors.push(FieldError::new(
                        format!("popups.quiet_hours.{part}"),
                        "a time like 19:30",
                    )),
                }
            }
            // "7:00" and "07:00" are the same time: quiet hours that would never apply.
            if times.len() == 2 && times[0] == times[1] {
                errors.push(FieldError::new(
                    "popups.quiet_hours.end",
                    "the end must differ from the start",
                ));
            }
        }
        if !(1..=20).contains(&p.max_on_screen) {
            errors.push(FieldError::new("popups.max_on_screen", "between 1 and 20"));
        }
        if p.answered_close_seconds > 600 {
            errors.push(FieldError::new(
                "popups.answered_close_seconds",
                "at most 600 seconds",
            ));
        }
        if !p.crm_url_template.trim().is_empty() {
            if let Err(m) = validate_crm_template(&p.crm_url_template) {
                errors.push(FieldError::new("popups.crm_url_template", m.to_string()));
            }
        }
    }
}

/// Whether a secret will be set after saving: a new non-empty value, or the stored one kept.
fn secret_given(new: &Option<String>, set: bool) -> bool {
    match new {
        Some(v) => !v.trim().is_empty(),
        None => set,
    }
}
