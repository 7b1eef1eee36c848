//! `fake-ringcentral`: run the fake platform by hand (demo, manual testing).
//!
//! ```text
//! fake-ringcentral [--listen 127.0.0.1:18080] [--calls-every SECONDS]
//! ```
//! Prints the credentials to give CallPop. With `--calls-every`, an inbound call to extension 101
//! is placed every so often (answered, missed or voicemail in turn) and delivered to whatever
//! subscriptions exist.
// A binary: the terminal is where it talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{bail, Context, Result};
use callpop_clock::Clock;
use chrono::Duration;
use fake_ringcentral::{CallOutcome, FakeConfig, FakePlatform, ScriptedCall};

#[tokio::main]
async fn main() -> Result<()> {
    let mut listen = "127.0.0.1:18080".to_string();
    let mut every: Option<i64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().context("--listen needs an address")?,
            "--calls-every" => {
                every = Some(
                    args.next()
                        .context("--calls-every needs seconds")?
                        .parse()
                        .context("--calls-every needs a number of seconds")?,
                )
            }
            "-h" | "--help" => {
                println!("fake-ringcentral [--listen ADDR] [--calls-every SECONDS]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let clock = Clock::from_env()?;
    let platform = FakePlatform::start_on(&listen, FakeConfig::new(clock)).await?;
    let (id, secret, jwt) = platform.credentials();
    println!("Fake RingCentral platform on {}", platform.url());
    println!("  CALLPOP_RINGCENTRAL_SERVER={}", platform.url());
    println!("  CALLPOP_RINGCENTRAL_CLIENT_ID={id}");
    println!("  CALLPOP_RINGCENTRAL_CLIENT_SECRET={secret}");
    println!("  CALLPOP_RINGCENTRAL_JWT={jwt}");
    if let Some(every) = every {
        let mut n = 0u64;
        loop {
            n += 1;
            let outcome = match n % 3 {
                0 => CallOutcome::Missed { ring: 20 },
                1 => CallOutcome::Answered { ring: 6, talk: 45 },
                _ => CallOutcome::Voicemail {
                    ring: 20,
                    message: 15,
                },
            };
            let from = format!("+1415555{:04}", n % 10_000);
            platform.schedule(ScriptedCall::to_owner(clock.now(), &from, outcome));
            clock.sleep(Duration::seconds(every.max(1))).await;
        }
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
