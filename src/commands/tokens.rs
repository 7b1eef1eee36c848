//! `callpop tokens`: the webhook tokens in force.

use anyhow::Result;

use callpop_engine::config::Config;

use callpop_engine::secrets::TokenSource;

pub(crate) fn tokens(config: &Config, reveal: bool) -> Result<()> {
    let tokens = callpop_engine::secrets::webhook_tokens(config)?;
    let show = |t: &Option<callpop_core::Secret>| match t {
        None => "(none: deliveries are not checked)".to_string(),
        Some(t) if reveal => t.expose().to_string(),
        Some(t) => {
            let head: String = t.expose().chars().take(4).collect();
            format!("{head}… (--reveal prints it)")
        }
    };
    let source = |s: TokenSource| match s {
        TokenSource::Environment => "environment".to_string(),
        TokenSource::File | TokenSource::Generated => tokens.file.display().to_string(),
    };
    println!(
        "RingCentral verification token: {}  [{}]",
        show(&tokens.ringcentral),
        source(tokens.ringcentral_source)
    );
    println!(
        "Ringotel api_token:             {}  [{}]",
        show(&tokens.ringotel),
        source(tokens.ringotel_source)
    );
    Ok(())
}
