//! `callpop serve`: the engine, headless, until Ctrl-C or SIGTERM.

use std::io::Write;

use anyhow::{Context, Result};

use callpop_core::model::Provider;
use callpop_engine::config::Config;

use crate::init_logging;
use callpop_core::routes::webhook_url;
use std::sync::Arc;

use callpop_engine::engine::{Engine, EngineOptions};
use callpop_engine::health::Part;
use callpop_engine::instance::InstanceLock;
use callpop_engine::secrets::TokenSource;

pub(crate) fn serve(config: Config) -> Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // The data dir first: a second serve on it (on the same port or another) is told
        // which CallPop runs there, not that the port is taken.
        let instance = Arc::new(InstanceLock::acquire(&config.data_dir, "callpop serve")?);
        // Listen before the engine starts: its subscription keeper may ask RingCentral to
        // validate our webhook address straight away.
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let holder = callpop_engine::port_holder::port_holder(config.listen).await;
                anyhow::bail!(callpop_engine::port_holder::port_taken_text(
                    config.listen,
                    holder
                ));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen on {}", config.listen)),
        };
        let options = EngineOptions {
            instance: Some(instance),
            ..EngineOptions::default()
        };
        let engine = Engine::start_with(config.clone(), options)?;
        let addr = listener.local_addr()?;
        print_banner(&engine, addr);
        let shutdown = engine.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            shutdown.cancel();
        });
        engine.run(listener).await;
        Ok(())
    })
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) fn print_banner(engine: &Engine, addr: std::net::SocketAddr) {
    let config = engine.config();
    let tokens = engine.tokens();
    let base = format!("http://{addr}");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "CallPop {} is receiving webhooks.",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "  RingCentral webhook: {}",
        webhook_url(&base, Provider::RingCentral)
    );
    let _ = writeln!(
        out,
        "  Ringotel webhook:    {}",
        webhook_url(&base, Provider::Ringotel)
    );
    let _ = writeln!(out, "  Health:              {base}/healthz");
    let _ = writeln!(out, "  Call history:        {}", config.db_path().display());
    if config.watch_extensions.is_empty() {
        let _ = writeln!(out, "  Watching:            every extension of the account");
    } else {
        let _ = writeln!(
            out,
            "  Watching:            extensions {}",
            config.watch_extensions.join(", ")
        );
    }
    let generated = [
        (
            tokens.ringcentral_source,
            "RingCentral verification token",
            &tokens.ringcentral,
        ),
        (
            tokens.ringotel_source,
            "Ringotel api_token",
            &tokens.ringotel,
        ),
    ];
    if generated
        .iter()
        .any(|(s, _, _)| *s == TokenSource::Generated)
    {
        let _ = writeln!(
            out,
            "New webhook tokens were generated for this installation (kept in {}, readable only by you):",
            tokens.file.display()
        );
        for (source, label, token) in generated {
            if let (TokenSource::Generated, Some(t)) = (source, token) {
                let _ = writeln!(out, "  {label}: {}", t.expose());
            }
        }
    } else {
        let _ = writeln!(
            out,
            "  Webhook tokens:      set (`callpop tokens` shows them)"
        );
    }
    for (label, token) in [
        ("RingCentral", &tokens.ringcentral),
        ("Ringotel", &tokens.ringotel),
    ] {
        if token.is_none() {
            let _ = writeln!(
                out,
                "  WARNING: {label} deliveries are accepted without a token (disabled by an empty environment variable)."
            );
        }
    }
    let parts = engine.health().snapshot().parts;
    for (name, label) in [
        (Part::Tunnel, "Public URL:         "),
        (Part::Subscription, "RingCentral sub.:   "),
        (Part::Notifications, "Popups:             "),
    ] {
        if let Some(part) = parts.get(&name) {
            let _ = writeln!(out, "  {label} {} — {}", part.state, part.detail);
        }
    }
    // Last, so whoever waits for this line has the whole banner.
    let _ = writeln!(out, "Listening on {base}");
    let _ = out.flush();
}
