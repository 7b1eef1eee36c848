//! Credentials in a real OS keyring: gnome-keyring's Secret Service, unlocked inside a private
//! D-Bus session, exactly as on a dealership desktop. Typed-in credentials must live there and
//! never in the data folder; webhook tokens stay in the private file the headless receiver
//! reads. One test per binary: it points this process at the private bus.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callpop_engine::config::{Config, Overrides};
use callpop_engine::secrets::{self, names};

fn config(data_dir: &Path, store: &str) -> Config {
    std::fs::write(data_dir.join("empty.toml"), "").expect("config file");
    let overrides = Overrides {
        data_dir: Some(data_dir.to_path_buf()),
        config_file: Some(data_dir.join("empty.toml")),
        ..Default::default()
    };
    let store = store.to_string();
    Config::load_with(&overrides, &move |k| {
        (k == "CALLPOP_SECRET_STORE").then(|| store.clone())
    })
    .expect("config")
}

fn file_text(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join(secrets::SECRETS_FILE)).unwrap_or_default()
}

/// Starts gnome-keyring's secrets component on `bus`, unlocked, with its files under `home`.
fn start_keyring(bus: &str, home: &Path) {
    let mut daemon = Command::new("gnome-keyring-daemon")
        .args(["--unlock", "--components=secrets"])
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("share"))
        .env("XDG_RUNTIME_DIR", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gnome-keyring-daemon (Debian package gnome-keyring)");
    daemon
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"test-login-password")
        .expect("unlock password");
    // It forks and the parent exits once the daemon runs.
    let _ = daemon.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("dbus-send")
            .args([
                &format!("--bus={bus}"),
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .output()
            .expect("dbus-send");
        if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
            return;
        }
        assert!(Instant::now() < deadline, "no Secret Service on the bus");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn credentials_live_in_the_os_keyring_and_never_in_the_data_folder() {
    let session = desktop_session::DesktopSession::start();
    let home = tempfile::tempdir().expect("home");
    start_keyring(&session.bus_address, home.path());
    // This test binary has one test (it is kept out of tests/it for that reason): pointing the
    // process at the private bus is safe.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &session.bus_address);

    let desk = tempfile::tempdir().expect("data dir");
    let c = config(desk.path(), "auto");
    assert_eq!(secrets::credential_store(&c), "the OS keyring");

    // A credential saved by Settings: in the keyring, readable back, not in the file.
    secrets::store(&c, names::RINGCENTRAL_JWT, Some("eyJ-test-jwt")).expect("store");
    let back = secrets::stored(&c, names::RINGCENTRAL_JWT).expect("read");
    assert_eq!(back.as_ref().map(|s| s.expose()), Some("eyJ-test-jwt"));
    assert!(!file_text(desk.path()).contains("eyJ-test-jwt"));

    // Another data folder (another desk on this login) does not see it.
    let other = tempfile::tempdir().expect("other data dir");
    let o = config(other.path(), "auto");
    assert_eq!(
        secrets::stored(&o, names::RINGCENTRAL_JWT).expect("read"),
        None
    );

    // A credential written to the file before the keyring existed is still read, and saving
    // it again moves it out of the file.
    std::fs::write(
        desk.path().join(secrets::SECRETS_FILE),
        r#"{"ngrok_authtoken": "old-from-file"}"#,
    )
    .expect("legacy file");
    let legacy = secrets::stored(&c, names::NGROK_AUTHTOKEN).expect("read");
    assert_eq!(legacy.as_ref().map(|s| s.expose()), Some("old-from-file"));
    secrets::store(&c, names::NGROK_AUTHTOKEN, Some("new-token")).expect("store");
    assert!(!file_text(desk.path()).contains("old-from-file"));
    let moved = secrets::stored(&c, names::NGROK_AUTHTOKEN).expect("read");
    assert_eq!(moved.as_ref().map(|s| s.expose()), Some("new-token"));

    // Removing it removes it from the keyring.
    secrets::store(&c, names::RINGCENTRAL_JWT, None).expect("remove");
    assert_eq!(
        secrets::stored(&c, names::RINGCENTRAL_JWT).expect("read"),
        None
    );

    // Webhook tokens stay in the private file, where `callpop serve` reads them.
    let tokens = secrets::webhook_tokens(&c).expect("tokens");
    let ringotel = tokens.ringotel.expect("generated token");
    assert!(file_text(desk.path()).contains(ringotel.expose()));

    // With the file chosen, credentials go to the file even though a keyring answers.
    let plain = tempfile::tempdir().expect("file-only data dir");
    let f = config(plain.path(), "file");
    assert_eq!(
        secrets::credential_store(&f),
        "a private file in the data folder"
    );
    secrets::store(&f, names::RINGCENTRAL_CLIENT_SECRET, Some("in-the-file")).expect("store");
    assert!(file_text(plain.path()).contains("in-the-file"));
}
