//! Secrets never show: the real `callpop serve` and CLI run with known values for every secret
//! (webhook tokens, RingCentral client secret and JWT, ngrok authtoken) kept in the private
//! secrets file, are driven through valid and invalid deliveries, wrong tokens, the platform
//! and every command that prints configuration or status, and nothing they print, log, answer
//! or store may contain a secret.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::{http, Server, RC_PATH, RO_PATH};
use callpop_clock::Clock;
use callpop_engine::secrets::names;
use fake_ringcentral::{CallOutcome, FakeConfig, FakePlatform, Group, ScriptedCall};
use serde_json::json;

const RC_TOKEN: &str = "rcverif-Secret-5f1e0d9c8b7a";
const RO_TOKEN: &str = "roapi-Secret-4e3d2c1b0a99";
const CLIENT_SECRET: &str = "clientsecret-Secret-8d7c6b5a";
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.jwtpayload-Secret-2b1a0f9e.sig";
const NGROK_AUTHTOKEN: &str = "2ngrokauthtoken_Secret_7f6e5d4c3b2a";
/// A credential that is wrong, but still must not be printed.
const WRONG_JWT: &str = "eyJ.wrongjwt-Secret-0a1b2c3d.sig";
const CLIENT_ID: &str = "callpop-client-id";

const SECRETS: &[&str] = &[
    RC_TOKEN,
    RO_TOKEN,
    CLIENT_SECRET,
    JWT,
    NGROK_AUTHTOKEN,
    WRONG_JWT,
];

/// Fails with the place and the secret when `text` holds any secret, whole or its distinctive
/// tail (in case something cut or re-encoded the start).
fn assert_no_secret(place: &str, text: &str) {
    for secret in SECRETS {
        let tail = secret
            .split_once("Secret")
            .map_or(*secret, |(_, tail)| tail);
        assert!(
            !text.contains(secret) && !text.contains(tail),
            "{place} contains the secret {secret}:\n{text}"
        );
    }
}

/// Writes the private secrets file the way CallPop does (0600).
fn write_secrets(dir: &Path) {
    std::fs::create_dir_all(dir).expect("data dir");
    let path = dir.join(callpop_engine::secrets::SECRETS_FILE);
    let values = json!({
        names::RINGCENTRAL_VERIFICATION_TOKEN: RC_TOKEN,
        names::RINGOTEL_API_TOKEN: RO_TOKEN,
        names::RINGCENTRAL_CLIENT_SECRET: CLIENT_SECRET,
        names::RINGCENTRAL_JWT: JWT,
        names::NGROK_AUTHTOKEN: NGROK_AUTHTOKEN,
    });
    std::fs::write(&path, values.to_string()).expect("secrets file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn telephony(uuid: &str) -> Vec<u8> {
    crate::common::rc_party_event(
        uuid,
        "s-secrets",
        "p1",
        Some(("62264425016", "101", "Alice Sales")),
        "Inbound",
        2,
        "Setup",
        chrono::Utc::now(),
    )
}

fn ringotel(token: &str, call_id: &str) -> Vec<u8> {
    json!({
        "method": "StartCallActivity",
        "api_token": token,
        "params": {"call_id": call_id, "extension": "500", "caller_number": "353212028252",
                   "call_start": 1_763_650_800_000u64}
    })
    .to_string()
    .into_bytes()
}

fn wait(what: &str, timeout: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn secrets_never_appear_in_logs_health_cli_output_or_the_history() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = FakeConfig::new(Clock::real());
    config.client_id = CLIENT_ID.into();
    config.client_secret = CLIENT_SECRET.into();
    config.jwt = JWT.into();
    config.call_log_lag = chrono::Duration::zero();
    // Every command below signs in; the platform's real limit (5 a minute) would refuse some.
    config.limits.insert(Group::Auth, 100);
    let fake = rt
        .block_on(FakePlatform::start(config))
        .expect("fake platform");

    let dir = tempfile::tempdir().expect("tempdir");
    write_secrets(dir.path());
    let port = crate::common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let public_url = format!("http://{listen}");
    // Everything secret comes from the private file; only what is not secret is in the
    // environment. Every part logs at its most verbose.
    let env: Vec<(&str, &str)> = vec![
        ("CALLPOP_SECRET_STORE", "file"),
        ("CALLPOP_RINGCENTRAL_SERVER", fake.url()),
        ("CALLPOP_RINGCENTRAL_CLIENT_ID", CLIENT_ID),
        ("CALLPOP_RINGCENTRAL_TRANSPORT", "webhook"),
        ("CALLPOP_TUNNEL", "provided"),
        ("CALLPOP_PUBLIC_URL", &public_url),
        ("CALLPOP_LISTEN", &listen),
        ("RUST_LOG", "trace"),
    ];
    let cli = |args: &[&str], extra: &[(&str, &str)]| -> Output {
        let mut cmd = crate::common::command(dir.path());
        for (k, v) in env.iter().chain(extra) {
            cmd.env(k, v);
        }
        cmd.args(args).output().expect("run callpop")
    };
    let server = Server::start_at(dir.path(), port, &env);
    let banner = server.stdout.join("\n");

    // The platform side: the keeper signs in with the client secret and JWT and creates the
    // subscription (which carries the verification token) after the validation handshake.
    wait("an active subscription", Duration::from_secs(20), || {
        fake.subscriptions().iter().any(|s| s.status == "Active")
    });
    fake.schedule(ScriptedCall::to_owner(
        chrono::Utc::now(),
        "+14155550123",
        CallOutcome::Answered { ring: 1, talk: 1 },
    ));

    // Valid, invalid and unauthenticated deliveries on both endpoints.
    let rc = |token: Option<&str>, body: &[u8]| {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(t) = token {
            headers.push(("Verification-Token", t));
        }
        http(port, "POST", RC_PATH, &headers, body)
    };
    let ro = |body: &[u8]| {
        http(
            port,
            "POST",
            RO_PATH,
            &[("Content-Type", "application/json")],
            body,
        )
    };
    let mut replies = Vec::new();
    for (want, reply) in [
        (200, rc(Some(RC_TOKEN), &telephony("sec-1"))),
        (401, rc(Some("wrong-token"), &telephony("sec-2"))),
        (401, rc(Some(&RC_TOKEN[..RC_TOKEN.len() - 1]), &telephony("sec-3"))),
        (401, rc(None, &telephony("sec-4"))),
        (400, rc(Some(RC_TOKEN), b"{\"uuid\":\"sec-5\"")),
        (400, rc(Some(RC_TOKEN), b"{\"uuid\":\"sec-6\",\"event\":\"/restapi/v1.0/account/1/telephony/sessions\",\"body\":{}}")),
        (200, ro(&ringotel(RO_TOKEN, "c-sec-1"))),
        (401, ro(&ringotel("wrong-token", "c-sec-2"))),
        (401, ro(&ringotel(&RO_TOKEN.to_uppercase(), "c-sec-3"))),
        (400, ro(format!("{{\"method\":\"StartCallActivity\",\"api_token\":\"{RO_TOKEN}\"").as_bytes())),
        (400, ro(format!("{{\"method\":\"StopCallActivity\",\"api_token\":\"{RO_TOKEN}\",\"params\":{{}}}}").as_bytes())),
        (400, ro(format!("{{\"method\":\"StartCallActivity\",\"api_token\":\"{RO_TOKEN}\",\"params\":{{\"call_id\":\"{RO_TOKEN}\",\"call_start\":\"soon\"}}}}").as_bytes())),
    ] {
        assert_eq!(reply.status, want, "{}", reply.text());
        replies.push(reply.text());
    }
    wait(
        "the platform's call to arrive",
        Duration::from_secs(20),
        || {
            crate::common::count(dir.path(), "SELECT count(*) FROM calls WHERE call_key != 's-secrets' AND provider = 'ringcentral'") > 0
        },
    );

    let health = http(port, "GET", "/healthz", &[], b"");
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["parts"]["subscription"]["state"], "active");
    assert_no_secret("/healthz", &health.text());
    for (i, reply) in replies.iter().enumerate() {
        assert_no_secret(&format!("reply {i}"), reply);
    }
    assert_no_secret("the banner", &banner);

    // Every command that prints configuration, status or stored data.
    let mut outputs = Vec::new();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["tunnel", "status"],
        &["tokens"],
        &["calls"],
        &["calls", "--json"],
        &["calls", "--csv"],
        &["events"],
        &["events", "--json"],
        &["events", "--quarantined"],
        &["events", "--quarantined", "--json"],
        &["events", "replay", "--quarantined"],
        &["subscriptions", "list"],
        &["subscriptions", "list", "--json"],
        &["subscriptions", "ensure"],
        &["backfill", "--since", "1h"],
    ] {
        let out = cli(args, &[]);
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
        outputs.push((format!("callpop {}", args.join(" ")), output_text(&out)));
    }
    // A rejected credential: the error says so without repeating it.
    let out = cli(
        &["subscriptions", "list"],
        &[("CALLPOP_RINGCENTRAL_JWT", WRONG_JWT)],
    );
    assert!(
        !out.status.success() && output_text(&out).contains("refused the credentials"),
        "{}",
        output_text(&out)
    );
    outputs.push((
        "callpop subscriptions list (wrong JWT)".into(),
        output_text(&out),
    ));
    for (place, text) in &outputs {
        assert_no_secret(place, text);
    }
    // The check above can see a secret: the one command meant to print one does.
    let revealed = output_text(&cli(&["tokens", "--reveal"], &[]));
    assert!(
        revealed.contains(RC_TOKEN) && revealed.contains(RO_TOKEN),
        "{revealed}"
    );

    let log = server.log();
    assert!(server.stop().success());
    assert!(log.contains("TRACE"), "verbose logging was on");
    assert_no_secret("the server log", &log);

    // The history on disk (database and its write-ahead log) holds no secret either.
    for file in ["callpop.db", "callpop.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            assert_no_secret(file, &String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn the_ngrok_authtoken_from_the_secret_store_is_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_secrets(dir.path());
    // Nothing listens here: the tunnel fails with an error that must not quote the authtoken.
    let closed = format!("127.0.0.1:{}", crate::common::free_port());
    let env = [
        ("CALLPOP_SECRET_STORE", "file"),
        ("CALLPOP_TUNNEL", "ngrok"),
        ("CALLPOP_NGROK_SERVER", closed.as_str()),
        ("RUST_LOG", "trace"),
    ];
    let server = Server::start_with(dir.path(), &env);
    wait("the tunnel error", Duration::from_secs(15), || {
        crate::common::health(server.port)["parts"]["tunnel"]["state"] == "error"
    });
    let health = http(server.port, "GET", "/healthz", &[], b"");
    assert_no_secret("/healthz", &health.text());
    let listen = format!("127.0.0.1:{}", server.port);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["tunnel", "status"],
    ] {
        let mut cmd = crate::common::command(dir.path());
        cmd.envs(env).env("CALLPOP_LISTEN", &listen).args(args);
        let out = cmd.output().expect("run callpop");
        assert!(out.status.success(), "{args:?}: {}", output_text(&out));
        assert_no_secret(&format!("callpop {}", args.join(" ")), &output_text(&out));
    }
    assert_no_secret("the banner", &server.stdout.join("\n"));
    let log = server.log();
    assert!(server.stop().success());
    assert!(log.contains("ngrok"), "the tunnel was attempted: {log}");
    assert_no_secret("the server log", &log);
}
