//! The settings page end to end: view, validate and save against real files.

use super::*;
use std::path::{Path, PathBuf};

use callpop_engine::config::{Config, Overrides};
use callpop_engine::secrets::names;

/// Loads the configuration from `file` (written with `toml` first) with an empty
/// environment, the data directory in `dir`: secrets go to `dir/secrets.json`.
fn load(dir: &Path, file: &Path) -> Config {
    let overrides = Overrides {
        data_dir: Some(dir.to_path_buf()),
        config_file: Some(file.to_path_buf()),
        ..Default::default()
    };
    // The file store: never a developer's real keyring (tests/keyring.rs covers it).
    Config::load_with(&overrides, &|k| {
        (k == "CALLPOP_SECRET_STORE").then(|| "file".to_string())
    })
    .expect("config")
}

fn config_with(dir: &Path, toml: &str) -> (Config, PathBuf) {
    let file = dir.join("config.toml");
    std::fs::write(&file, toml).expect("write config");
    (load(dir, &file), file)
}

fn label(number: &str, name: &str) -> LineLabel {
    LineLabel {
        number: number.into(),
        label: name.into(),
    }
}

/// Defaults, as a fresh install shows them.
fn fresh() -> (tempfile::TempDir, Config, SettingsView) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = config_with(dir.path(), "");
    let view = SettingsView::from_config(&config);
    (dir, config, view)
}

/// The fields of the errors, in order.
fn fields(update: &SettingsUpdate, current: &SettingsView) -> Vec<String> {
    update
        .validate(current)
        .expect_err("invalid")
        .into_iter()
        .map(|e| e.field)
        .collect()
}

fn one_error(update: &SettingsUpdate, current: &SettingsView) -> FieldError {
    let mut errors = update.validate(current).expect_err("invalid");
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

#[test]
fn a_fresh_install_shows_the_defaults_and_no_secrets() {
    let (dir, _config, view) = fresh();
    assert_eq!(
        view,
        SettingsView {
            ringcentral: RingCentralView {
                server: "https://platform.ringcentral.com".into(),
                client_id: String::new(),
                client_secret_set: false,
                jwt_set: false,
                transport: Transport::Auto,
            },
            ringotel: RingotelView {
                api_token_set: false,
                api_token_from_environment: false,
            },
            tunnel: TunnelView {
                mode: TunnelModeView::Off,
                ngrok_authtoken_set: false,
                ngrok_domain: String::new(),
                public_url: String::new(),
            },
            watch_extensions: Vec::new(),
            line_labels: Vec::new(),
            popups: PopupsView {
                notifications: NotificationsView::Auto,
                quiet_hours: None,
                max_on_screen: 3,
                crm_url_template: String::new(),
                answered_close_seconds: 8,
            },
            general: GeneralView {
                autostart: false,
                close_to_tray: true,
                data_dir: dir.path().display().to_string(),
                default_country: "US".into(),
            },
            managed_by_hub: None,
        }
    );
    // What the window sends back unchanged is valid.
    assert_eq!(view.unchanged().validate(&view), Ok(()));
}

#[test]
fn the_view_reads_every_section_of_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = config_with(
        dir.path(),
        "default_country = \"AU\"\nwatch_extensions = [\"101\", \"102\"]\n\
         public_url = \"https://desk.example.com/\"\n\
         [[line_labels]]\nnumber = \"+61398765432\"\nlabel = \"Sales\"\n\
         [ringcentral]\nserver = \"https://platform.devtest.ringcentral.com\"\nclient_id = \"abc\"\n\
         [tunnel]\nmode = \"provided\"\nngrok_domain = \"desk.ngrok.app\"\n\
         [popups]\nnotifications = \"off\"\nmax_on_screen = 7\nanswered_close_seconds = 30\n\
         quiet_hours = { start = \"19:00\", end = \"7:30\" }\n\
         crm_url_template = \"https://crm.example/find?p={e164}\"\n\
         [desktop]\nautostart = true\nclose_to_tray = false\n",
    );
    let view = SettingsView::from_config(&config);
    assert_eq!(
        view.ringcentral.server,
        "https://platform.devtest.ringcentral.com"
    );
    assert_eq!(view.ringcentral.client_id, "abc");
    assert_eq!(view.tunnel.mode, TunnelModeView::Provided);
    assert_eq!(view.tunnel.ngrok_domain, "desk.ngrok.app");
    assert_eq!(view.tunnel.public_url, "https://desk.example.com");
    assert_eq!(view.watch_extensions, vec!["101", "102"]);
    assert_eq!(view.line_labels, vec![label("+61398765432", "Sales")]);
    assert_eq!(
        view.popups,
        PopupsView {
            notifications: NotificationsView::Off,
            quiet_hours: Some(QuietHoursView {
                start: "19:00".into(),
                end: "07:30".into(),
            }),
            max_on_screen: 7,
            crm_url_template: "https://crm.example/find?p={e164}".into(),
            answered_close_seconds: 30,
        }
    );
    assert!(view.general.autostart);
    assert!(!view.general.close_to_tray);
    assert_eq!(view.general.default_country, "AU");
    assert_eq!(view.unchanged().validate(&view), Ok(()));
}

#[test]
fn the_tunnel_mode_auto_is_shown_as_what_it_picks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mode = |toml: &str| {
        SettingsView::from_config(&config_with(dir.path(), toml).0)
            .tunnel
            .mode
    };
    assert_eq!(mode(""), TunnelModeView::Off);
    let provided = "public_url = \"https://desk.example.com\"\n";
    assert_eq!(mode(provided), TunnelModeView::Provided);
    // A stored ngrok authtoken wins over a provided URL.
    let (config, _) = config_with(dir.path(), provided);
    callpop_engine::secrets::store(&config, names::NGROK_AUTHTOKEN, Some("tok")).expect("store");
    let view = SettingsView::from_config(&config);
    assert_eq!(view.tunnel.mode, TunnelModeView::Ngrok);
    assert!(view.tunnel.ngrok_authtoken_set);
    // Test builds' loopback tunnel is no choice of the window's.
    if cfg!(feature = "test-hooks") {
        assert_eq!(mode("[tunnel]\nmode = \"loopback\"\n"), TunnelModeView::Off);
    }
    assert_eq!(mode("[tunnel]\nmode = \"off\"\n"), TunnelModeView::Off);
}

#[test]
fn secrets_from_the_environment_or_the_store_show_only_as_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "").expect("write");
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        config_file: Some(file),
        ..Default::default()
    };
    let config = Config::load_with(&overrides, &|k| match k {
        "CALLPOP_RINGCENTRAL_JWT" => Some("env.jwt.value".to_string()),
        "CALLPOP_SECRET_STORE" => Some("file".to_string()),
        _ => None,
    })
    .expect("config");
    callpop_engine::secrets::store(
        &config,
        names::RINGCENTRAL_CLIENT_SECRET,
        Some("stored-client-secret"),
    )
    .expect("store");
    let view = SettingsView::from_config(&config);
    assert!(view.ringcentral.jwt_set, "from the environment");
    assert!(view.ringcentral.client_secret_set, "from the store");
    assert!(!view.ringotel.api_token_set);
    assert!(!view.tunnel.ngrok_authtoken_set);
    let json = serde_json::to_string(&view).expect("json");
    assert!(!json.contains("env.jwt.value"), "{json}");
    assert!(!json.contains("stored-client-secret"), "{json}");
}

#[test]
fn a_bad_server_is_reported_on_its_field() {
    let (_dir, _config, view) = fresh();
    for bad in [
        "",
        "platform.ringcentral.com",
        "https://",
        "ftp://platform.ringcentral.com",
        "http://platform.ringcentral.com",
        "http://192.168.1.10:8080",
        "http://134744072",
        "http://127.0.0.1:notaport",
        "http://localhost:99999",
    ] {
        let mut u = view.unchanged();
        u.ringcentral.server = bad.into();
        let e = one_error(&u, &view);
        assert_eq!(e.field, "ringcentral.server", "{bad:?}");
        assert!(
            e.message.contains("https://platform.ringcentral.com"),
            "{e:?}"
        );
    }
    for good in [
        "https://platform.ringcentral.com",
        "https://platform.devtest.ringcentral.com/",
        " https://platform.ringcentral.com ",
        "http://127.0.0.1:8080",
        "http://127.0.0.1",
        "http://localhost:9000/",
    ] {
        let mut u = view.unchanged();
        u.ringcentral.server = good.into();
        assert_eq!(u.validate(&view), Ok(()), "{good:?}");
    }
}

#[test]
fn credentials_need_a_client_id_and_a_jwt_has_three_parts() {
    let (_dir, _config, view) = fresh();
    let mut u = view.unchanged();
    u.ringcentral.client_id = "has space".into();
    assert_eq!(
        one_error(&u, &view),
        FieldError::new("ringcentral.client_id", "a client id has no spaces")
    );
    u.ringcentral.client_id = "x".repeat(129);
    assert_eq!(one_error(&u, &view).field, "ringcentral.client_id");

    let mut u = view.unchanged();
    u.ringcentral.client_secret = Some("secret".into());
    assert_eq!(
        one_error(&u, &view),
        FieldError::new(
            "ringcentral.client_id",
            "the client id is needed with a secret or JWT"
        )
    );
    u.ringcentral.client_id = "abc".into();
    assert_eq!(u.validate(&view), Ok(()));

    u.ringcentral.jwt = Some("only.two".into());
    assert_eq!(
        one_error(&u, &view),
        FieldError::new("ringcentral.jwt", "a JWT has three parts separated by dots")
    );
    u.ringcentral.jwt = Some(" a.b.c ".into());
    assert_eq!(u.validate(&view), Ok(()));

    // A secret already stored needs the client id too; clearing it does not.
    let mut stored = view;
    stored.ringcentral.jwt_set = true;
    let u = stored.unchanged();
    assert_eq!(one_error(&u, &stored).field, "ringcentral.client_id");
    let mut u = stored.unchanged();
    u.ringcentral.jwt = Some("  ".into());
    assert_eq!(u.validate(&stored), Ok(()));
}

#[test]
fn tunnel_fields_are_checked_for_the_chosen_mode_only() {
    let (_dir, _config, view) = fresh();
    let mut u = view.unchanged();
    u.tunnel.mode = TunnelModeView::Ngrok;
    assert_eq!(
        one_error(&u, &view),
        FieldError::new(
            "tunnel.ngrok_authtoken",
            "paste the ngrok authtoken from the ngrok dashboard"
        )
    );
    u.tunnel.ngrok_authtoken = Some("tok".into());
    assert_eq!(u.validate(&view), Ok(()));
    for bad in [
        "bad_domain.ngrok.app",
        "nodots",
        "-desk.ngrok.app",
        "desk..app",
    ] {
        u.tunnel.ngrok_domain = bad.into();
        assert_eq!(one_error(&u, &view).field, "tunnel.ngrok_domain", "{bad:?}");
    }
    u.tunnel.ngrok_domain = "desk-42.ngrok.app".into();
    assert_eq!(u.validate(&view), Ok(()));
    // An authtoken stored earlier is enough.
    let mut stored = view.clone();
    stored.tunnel.ngrok_authtoken_set = true;
    let mut u2 = stored.unchanged();
    u2.tunnel.mode = TunnelModeView::Ngrok;
    assert_eq!(u2.validate(&stored), Ok(()));

    let mut u = view.unchanged();
    u.tunnel.mode = TunnelModeView::Provided;
    for bad in ["", "desk.example.com", "https://desk.example.com/?x=1"] {
        u.tunnel.public_url = bad.into();
        assert_eq!(one_error(&u, &view).field, "tunnel.public_url", "{bad:?}");
    }
    u.tunnel.public_url = "https://desk.example.com/".into();
    assert_eq!(u.validate(&view), Ok(()));
    // With the tunnel off, a leftover URL or domain is not checked.
    u.tunnel.mode = TunnelModeView::Off;
    u.tunnel.public_url = "junk".into();
    u.tunnel.ngrok_domain = "junk".into();
    assert_eq!(u.validate(&view), Ok(()));
}

#[test]
fn each_bad_extension_is_reported_by_its_index() {
    let (_dir, _config, view) = fresh();
    let mut u = view.unchanged();
    u.watch_extensions = vec![
        "101".into(),
        "".into(),
        "12a".into(),
        " 62264425016 ".into(),
        "1".repeat(21),
    ];
    let errors = u.validate(&view).expect_err("invalid");
    assert_eq!(
        errors,
        vec![
            FieldError::new(
                "watch_extensions.1",
                "an extension number or id is digits only"
            ),
            FieldError::new(
                "watch_extensions.2",
                "an extension number or id is digits only"
            ),
            FieldError::new(
                "watch_extensions.4",
                "an extension number or id is digits only"
            ),
        ]
    );
}

#[test]
fn an_unsupported_country_is_reported_with_the_choices() {
    let (_dir, _config, view) = fresh();
    let mut u = view.unchanged();
    u.general.default_country = "XX".into();
    let e = one_error(&u, &view);
    assert_eq!(e.field, "general.default_country");
    assert_eq!(e.message, "choose one of US, CA, AU, NZ, GB, IE");
    u.general.default_country = " au ".into();
    assert_eq!(u.validate(&view), Ok(()));
}

#[test]
fn a_bad_country_does_not_make_good_line_labels_look_bad() {
    let (_dir, _config, view) = fresh();
    let mut u = view.unchanged();
    u.general.default_country = "XX".into();
    u.line_labels = vec![
        label("+16505550100", "Sales"),
        label("(650) 555-0101", "Service"),
    ];
    assert_eq!(fields(&u, &view), vec!["general.default_country"]);
}

#[test]
fn line_labels_need_a_number_once_and_a_short_name() {
    let (_dir, _config, view) = fresh();
    let mut u = view.unchanged();
    u.line_labels = vec![
        label("+16505550100", "Sales"),
        label("(650) 555-0100", "Service"),
        label("abc", "Parts"),
        label("+16505550101", "  "),
        label("101", "Desk"),
        label("101", "Desk again"),
        label("+16505550102", &"x".repeat(41)),
        label("+16505550103", &"é".repeat(40)),
    ];
    let errors = u.validate(&view).expect_err("invalid");
    assert_eq!(
        errors,
        vec![
            FieldError::new("line_labels.1.number", "this number already has a label"),
            FieldError::new(
                "line_labels.2.number",
                "a phone number such as +1 650 555 0100"
            ),
            FieldError::new(
                "line_labels.3.label",
                "a short name such as Sales (up to 40 characters)"
            ),
            FieldError::new("line_labels.5.number", "this number already has a label"),
            FieldError::new(
                "line_labels.6.label",
                "a short name such as Sales (up to 40 characters)"
            ),
        ]
    );
}

#[test]
fn quiet_hours_need_two_different_times() {
    let (_dir, _config, view) = fresh();
    let quiet = |start: &str, end: &str| {
        let mut u = view.unchanged();
        u.popups.quiet_hours = Some(QuietHoursView {
            start: start.into(),
            end: end.into(),
        });
        u
    };
    assert_eq!(quiet("19:00", "07:30").validate(&view), Ok(()));
    assert_eq!(
        one_error(&quiet("7pm", "07:00"), &view),
        FieldError::new("popups.quiet_hours.start", "a time like 19:30")
    );
    assert_eq!(
        one_error(&quiet("19:00", "24:00"), &view),
        FieldError::new("popups.quiet_hours.end", "a time like 19:30")
    );
    assert_eq!(
        fields(&quiet("", "x"), &view),
        vec!["popups.quiet_hours.start", "popups.quiet_hours.end"]
    );
    assert_eq!(
        one_error(&quiet("19:00", " 19:00 "), &view),
        FieldError::new(
            "popups.quiet_hours.end",
            "the end must differ from the start"
        )
    );
    // The same time written differently is still the same time.
    assert_eq!(
        one_error(&quiet("7:00", "07:00"), &view),
        FieldError::new(
            "popups.quiet_hours.end",
            "the end must differ from the start"
        )
    );
}

#[test]
fn popup_numbers_and_the_crm_link_are_checked() {
    let (_dir, _config, view) = fresh();
    for (n, ok) in [(0, false), (1, true), (20, true), (21, false)] {
        let mut u = view.unchanged();
        u.popups.max_on_screen = n;
        if ok {
            assert_eq!(u.validate(&view), Ok(()), "{n}");
        } else {
            assert_eq!(
                one_error(&u, &view),
                FieldError::new("popups.max_on_screen", "between 1 and 20"),
                "{n}"
            );
        }
    }
    let mut u = view.unchanged();
    u.popups.answered_close_seconds = 600;
    assert_eq!(u.validate(&view), Ok(()));
    u.popups.answered_close_seconds = 601;
    assert_eq!(
        one_error(&u, &view),
        FieldError::new("popups.answered_close_seconds", "at most 600 seconds")
    );

    let mut u = view.unchanged();
    u.popups.crm_url_template = "https://crm/{phone}".into();
    let e = one_error(&u, &view);
    assert_eq!(e.field, "popups.crm_url_template");
    assert!(e.message.contains("{phone}"), "{e:?}");
    u.popups.crm_url_template = "javascript:alert(1)".into();
    assert_eq!(one_error(&u, &view).field, "popups.crm_url_template");
    u.popups.crm_url_template = "https://crm.example/find?p={e164}&n={name}".into();
    assert_eq!(u.validate(&view), Ok(()));
    u.popups.crm_url_template = "   ".into();
    assert_eq!(u.validate(&view), Ok(()));
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let (_dir, _config, view) = fresh();
    let mut u = view.unchanged();
    u.ringcentral.server = "nope".into();
    u.watch_extensions = vec!["x".into()];
    u.general.default_country = "ZZ".into();
    u.popups.max_on_screen = 0;
    u.popups.quiet_hours = Some(QuietHoursView {
        start: "1".into(),
        end: "2".into(),
    });
    assert_eq!(
        fields(&u, &view),
        vec![
            "ringcentral.server",
            "watch_extensions.0",
            "general.default_country",
            "popups.quiet_hours.start",
            "popups.quiet_hours.end",
            "popups.max_on_screen",
        ]
    );
}

/// An update touching every field, with all four secrets.
fn everything(view: &SettingsView) -> SettingsUpdate {
    let mut u = view.unchanged();
    u.ringcentral = RingCentralUpdate {
        server: " https://platform.devtest.ringcentral.com/ ".into(),
        client_id: " client-123 ".into(),
        client_secret: Some(" the-client-secret ".into()),
        jwt: Some("jwt.header.signature".into()),
        transport: Transport::Websocket,
    };
    u.ringotel.api_token = Some("the-ringotel-token".into());
    u.tunnel = TunnelUpdate {
        mode: TunnelModeView::Ngrok,
        ngrok_authtoken: Some("the-ngrok-token".into()),
        ngrok_domain: "desk-42.ngrok.app".into(),
        public_url: "https://desk.example.com/".into(),
    };
    u.watch_extensions = vec![" 101 ".into(), "62264425016".into()];
    u.line_labels = vec![
        label(" +16505550100 ", " Sales "),
        label("101", "Front desk"),
    ];
    u.popups = PopupsView {
        notifications: NotificationsView::Off,
        quiet_hours: Some(QuietHoursView {
            start: "19:00".into(),
            end: "07:30".into(),
        }),
        max_on_screen: 5,
        crm_url_template: "https://crm.example/find?p={e164}".into(),
        answered_close_seconds: 20,
    };
    u.general = GeneralUpdate {
        autostart: true,
        close_to_tray: false,
        default_country: "ca".into(),
    };
    u
}

const SECRET_VALUES: [&str; 4] = [
    "the-client-secret",
    "jwt.header.signature",
    "the-ringotel-token",
    "the-ngrok-token",
];

#[test]
fn saved_settings_read_back_as_saved_and_secrets_stay_out_of_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, file) = config_with(dir.path(), "");
    let view = SettingsView::from_config(&config);
    let update = everything(&view);
    assert_eq!(update.validate(&view), Ok(()));
    update.save(&config, &file).expect("save");

    let reloaded = load(dir.path(), &file);
    let shown = SettingsView::from_config(&reloaded);
    assert_eq!(
        shown,
        SettingsView {
            ringcentral: RingCentralView {
                server: "https://platform.devtest.ringcentral.com".into(),
                client_id: "client-123".into(),
                client_secret_set: true,
                jwt_set: true,
                transport: Transport::Websocket,
            },
            ringotel: RingotelView {
                api_token_set: true,
                api_token_from_environment: false,
            },
            tunnel: TunnelView {
                mode: TunnelModeView::Ngrok,
                ngrok_authtoken_set: true,
                ngrok_domain: "desk-42.ngrok.app".into(),
                public_url: "https://desk.example.com".into(),
            },
            watch_extensions: vec!["101".into(), "62264425016".into()],
            line_labels: vec![label("+16505550100", "Sales"), label("101", "Front desk")],
            popups: PopupsView {
                notifications: NotificationsView::Off,
                quiet_hours: Some(QuietHoursView {
                    start: "19:00".into(),
                    end: "07:30".into(),
                }),
                max_on_screen: 5,
                crm_url_template: "https://crm.example/find?p={e164}".into(),
                answered_close_seconds: 20,
            },
            general: GeneralView {
                autostart: true,
                close_to_tray: false,
                data_dir: dir.path().display().to_string(),
                default_country: "CA".into(),
            },
            managed_by_hub: None,
        }
    );
    // The secrets are in the secret store, trimmed, and nowhere in the file or the view.
    let stored = |name: &str| {
        callpop_engine::secrets::stored(&reloaded, name)
            .expect("stored")
            .map(|s| s.expose().to_string())
    };
    assert_eq!(
        stored(names::RINGCENTRAL_CLIENT_SECRET).as_deref(),
        Some("the-client-secret")
    );
    assert_eq!(
        stored(names::RINGCENTRAL_JWT).as_deref(),
        Some("jwt.header.signature")
    );
    assert_eq!(
        stored(names::RINGOTEL_API_TOKEN).as_deref(),
        Some("the-ringotel-token")
    );
    assert_eq!(
        stored(names::NGROK_AUTHTOKEN).as_deref(),
        Some("the-ngrok-token")
    );
    let text = std::fs::read_to_string(&file).expect("read");
    let json = serde_json::to_string(&shown).expect("json");
    for secret in SECRET_VALUES {
        assert!(!text.contains(secret), "{secret} in the file:\n{text}");
        assert!(!json.contains(secret), "{secret} in the view: {json}");
    }
    assert!(
        text.starts_with("# Written by CallPop's settings window"),
        "{text}"
    );
    // The secrets reach the engine's configuration.
    let mut engine_config = reloaded.clone();
    callpop_engine::secrets::complete_platform_credentials(&mut engine_config).expect("complete");
    assert!(engine_config.ringcentral.has_credentials());
    // Saving what is shown again changes nothing.
    shown
        .unchanged()
        .save(&reloaded, &file)
        .expect("save again");
    assert_eq!(SettingsView::from_config(&load(dir.path(), &file)), shown);
    assert_eq!(
        stored(names::RINGCENTRAL_JWT).as_deref(),
        Some("jwt.header.signature"),
        "a secret not sent back is kept"
    );
    assert!(!dir.path().join("config.toml.tmp").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the settings file is the user's alone");
}

#[test]
fn saving_keeps_the_settings_the_window_does_not_show() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, file) = config_with(
        dir.path(),
        "# my notes about this desk\nmax_body_bytes = 4096\n\
         watch_extensions = [\"101\"]\n\
         [ringcentral]\nevent_filters = [\"/restapi/v1.0/account/~/telephony/sessions\"]\n\
         subscription_expires_in = 3600\ncheck_interval_seconds = 300\n\
         [popups]\nstale_after_seconds = 30\nmax_on_screen = 4\n",
    );
    let view = SettingsView::from_config(&config);
    let mut u = view.unchanged();
    u.watch_extensions = vec!["102".into()];
    u.popups.max_on_screen = 6;
    u.save(&config, &file).expect("save");

    let c = load(dir.path(), &file);
    assert_eq!(c.watch_extensions, vec!["102"]);
    assert_eq!(c.popups.max_on_screen, 6);
    assert_eq!(c.max_body_bytes, 4096);
    assert_eq!(
        c.ringcentral.event_filters,
        vec!["/restapi/v1.0/account/~/telephony/sessions"]
    );
    assert_eq!(c.ringcentral.subscription_expires_in, 3600);
    assert_eq!(c.ringcentral.check_interval, chrono::Duration::seconds(300));
    assert_eq!(c.popups.stale_after, std::time::Duration::from_secs(30));
}

/// Writes `written` as the settings file, saves the settings shown with `change` made to
/// them, and returns the file's text afterwards and its path.
fn save_over(
    dir: &Path,
    written: &str,
    change: impl FnOnce(&mut SettingsUpdate),
) -> (String, PathBuf) {
    let (config, file) = config_with(dir, written);
    let view = SettingsView::from_config(&config);
    let mut update = view.unchanged();
    change(&mut update);
    assert_eq!(update.validate(&view), Ok(()));
    update.save(&config, &file).expect("save");
    (std::fs::read_to_string(&file).expect("read"), file)
}

fn assert_kept(saved: &str, kept: &[&str]) {
    for k in kept {
        assert!(saved.contains(k), "lost {k:?} in:\n{saved}");
    }
}

fn evening_quiet_hours() -> Option<QuietHoursView> {
    Some(QuietHoursView {
        start: "20:00".into(),
        end: "07:30".into(),
    })
}

#[test]
fn saving_keeps_the_files_comments_layout_and_the_settings_the_window_does_not_show() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = r#"# Dealership phones. Ask Sam before changing anything here.

# Fourteen-digit bodies from the old PBX bridge need more room.
max_body_bytes = 131072
default_country = "US" # most callers are local

[ringcentral]
# The sandbox until go-live on the 1st.
server = "https://platform.devtest.ringcentral.com"
check_interval_seconds = 600 # RingCentral asked us not to poll faster

[popups]
notifications = "auto"
stale_after_seconds = 900
quiet_hours = { start = "19:00", end = "07:30" } # the showroom closes at seven
"#;
    let (saved, file) = save_over(dir.path(), written, |update| {
        update.general.default_country = "ca".into();
        update.ringcentral.server = "https://platform.ringcentral.com/".into();
        update.popups.notifications = NotificationsView::Off;
        update.popups.quiet_hours = evening_quiet_hours();
    });
    assert_kept(
        &saved,
        &[
            "# Dealership phones. Ask Sam before changing anything here.\n",
            "# Fourteen-digit bodies from the old PBX bridge need more room.\nmax_body_bytes = 131072\n",
            "default_country = \"CA\" # most callers are local\n",
            "[ringcentral]\n# The sandbox until go-live on the 1st.\nserver = \"https://platform.ringcentral.com\"\n",
            "check_interval_seconds = 600 # RingCentral asked us not to poll faster\n",
            "notifications = \"off\"\nstale_after_seconds = 900\n",
            "quiet_hours = { start = \"20:00\", end = \"07:30\" } # the showroom closes at seven\n",
        ],
    );
    assert!(
        !saved.contains("Written by CallPop"),
        "a hand-written file gets no header:\n{saved}"
    );
    let reloaded = load(dir.path(), &file);
    assert_eq!(reloaded.max_body_bytes, 131_072);
    assert_eq!(
        reloaded.ringcentral.server,
        "https://platform.ringcentral.com"
    );
    assert_eq!(
        reloaded.ringcentral.check_interval,
        chrono::Duration::seconds(600)
    );

    // Saving again changes nothing: the file settles.
    let view = SettingsView::from_config(&reloaded);
    view.unchanged().save(&reloaded, &file).expect("save again");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), saved);
}

#[test]
fn unchanged_lists_keep_their_comments_and_a_cleared_key_leaves_its_comment_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = r#"# Showroom PC. Ask Sam before changing anything here.
public_url = "https://calls.dealer.example"
watch_extensions = [
  "101", # front desk
  "102",
]

[popups]
quiet_hours.start = "19:00"
quiet_hours.end = "07:30"

# Our main lines.
[[line_labels]]
number = "+14155550100" # the number on the sign
label = "Sales"
"#;
    let (saved, file) = save_over(dir.path(), written, |update| {
        update.tunnel.mode = TunnelModeView::Off;
        update.tunnel.public_url = String::new();
        update.popups.quiet_hours = evening_quiet_hours();
    });
    assert!(!saved.contains("public_url"), "{saved}");
    assert_kept(
        &saved,
        &[
            "# Showroom PC. Ask Sam before changing anything here.\n",
            "watch_extensions = [\n  \"101\", # front desk\n  \"102\",\n]\n",
            "quiet_hours.start = \"20:00\"\nquiet_hours.end = \"07:30\"\n",
            "# Our main lines.\n[[line_labels]]\nnumber = \"+14155550100\" # the number on the sign\n",
        ],
    );
    let reloaded = load(dir.path(), &file);
    let shown = SettingsView::from_config(&reloaded);
    assert_eq!(shown.watch_extensions, vec!["101", "102"]);
    assert_eq!(shown.line_labels, vec![label("+14155550100", "Sales")]);
    assert_eq!(shown.tunnel.public_url, "");
}

#[test]
fn clearing_a_value_removes_its_key_and_an_empty_secret_removes_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, file) = config_with(dir.path(), "");
    let view = SettingsView::from_config(&config);
    everything(&view).save(&config, &file).expect("save");
    let config = load(dir.path(), &file);
    let view = SettingsView::from_config(&config);

    let mut u = view.unchanged();
    u.ringcentral.client_id = " ".into();
    u.ringcentral.client_secret = Some(String::new());
    u.ringcentral.jwt = Some("  ".into());
    u.ringotel.api_token = Some(String::new());
    u.tunnel = TunnelUpdate {
        mode: TunnelModeView::Off,
        ngrok_authtoken: Some(String::new()),
        ngrok_domain: String::new(),
        public_url: String::new(),
    };
    u.line_labels.clear();
    u.watch_extensions.clear();
    u.popups.quiet_hours = None;
    u.popups.crm_url_template = String::new();
    assert_eq!(u.validate(&view), Ok(()));
    u.save(&config, &file).expect("save");

    let doc: toml::Table =
        toml::from_str(&std::fs::read_to_string(&file).expect("read")).expect("toml");
    let table = |name: &str| doc[name].as_table().expect("table").clone();
    assert!(!table("ringcentral").contains_key("client_id"), "{doc}");
    assert!(!table("tunnel").contains_key("ngrok_domain"), "{doc}");
    assert!(!table("popups").contains_key("quiet_hours"), "{doc}");
    assert!(!table("popups").contains_key("crm_url_template"), "{doc}");
    assert!(!doc.contains_key("public_url"), "{doc}");
    assert_eq!(doc["tunnel"]["mode"].as_str(), Some("off"));

    let c = load(dir.path(), &file);
    for name in names::ALL {
        assert!(
            callpop_engine::secrets::stored(&c, name)
                .expect("stored")
                .is_none(),
            "{name} still stored"
        );
    }
    let shown = SettingsView::from_config(&c);
    assert_eq!(shown.ringcentral.client_id, "");
    assert!(!shown.ringcentral.client_secret_set);
    assert!(!shown.ringcentral.jwt_set);
    assert!(!shown.ringotel.api_token_set);
    assert!(!shown.tunnel.ngrok_authtoken_set);
    assert_eq!(shown.tunnel.mode, TunnelModeView::Off);
    assert_eq!(shown.tunnel.public_url, "");
    assert_eq!(shown.tunnel.ngrok_domain, "");
    assert!(shown.line_labels.is_empty());
    assert!(shown.watch_extensions.is_empty());
    assert_eq!(shown.popups.quiet_hours, None);
    assert_eq!(shown.popups.crm_url_template, "");
}

#[test]
fn saving_creates_a_missing_file_and_refuses_to_overwrite_a_damaged_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = config_with(dir.path(), "");
    let view = SettingsView::from_config(&config);
    let file = dir.path().join("new").join("sub").join("config.toml");
    let mut u = view.unchanged();
    u.general.default_country = "GB".into();
    u.save(&config, &file).expect("save to a new file");
    assert_eq!(load(dir.path(), &file).default_country.iso, "GB");

    let damaged = dir.path().join("damaged.toml");
    std::fs::write(&damaged, "this is [not toml").expect("write");
    let err = u.save(&config, &damaged).expect_err("damaged");
    assert!(
        matches!(err, SettingsError::Damaged { ref path, .. } if *path == damaged),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with(&format!("cannot write {}", damaged.display())));
    assert_eq!(
        std::fs::read_to_string(&damaged).expect("read"),
        "this is [not toml"
    );
}

#[test]
fn a_damaged_secret_store_fails_the_save_with_a_secrets_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, file) = config_with(dir.path(), "");
    let view = SettingsView::from_config(&config);
    std::fs::write(
        dir.path().join(callpop_engine::secrets::SECRETS_FILE),
        "{not json",
    )
    .expect("write");
    let mut u = view.unchanged();
    u.ringotel.api_token = Some("tok".into());
    let err = u.save(&config, &file).expect_err("secrets");
    assert!(matches!(err, SettingsError::Secrets(_)), "{err}");
    assert!(
        err.to_string().starts_with("cannot store a secret: "),
        "{err}"
    );
}

/// Settings with a RingCentral client id, secret and JWT saved for `server`.
fn with_credentials(dir: &Path, server: &str) -> (Config, PathBuf, SettingsView) {
    let (config, file) = config_with(dir, "");
    let mut u = SettingsView::from_config(&config).unchanged();
    u.ringcentral = RingCentralUpdate {
        server: server.into(),
        client_id: "client-123".into(),
        client_secret: Some("the-client-secret".into()),
        jwt: Some("jwt.header.signature".into()),
        transport: Transport::Auto,
    };
    assert_eq!(u.validate(&SettingsView::from_config(&config)), Ok(()));
    u.save(&config, &file).expect("save");
    let config = load(dir, &file);
    let view = SettingsView::from_config(&config);
    assert!(view.ringcentral.client_secret_set && view.ringcentral.jwt_set);
    (config, file, view)
}

#[test]
fn credentials_stay_with_ringcentral_when_the_server_moves_between_its_platforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, file, view) = with_credentials(dir.path(), "https://platform.ringcentral.com");
    let mut u = view.unchanged();
    u.ringcentral.server = "https://platform.devtest.ringcentral.com".into();
    assert_eq!(u.confirmations(&view), Vec::new(), "nothing to ask");
    u.save(&config, &file).expect("save");
    let mut moved = load(dir.path(), &file);
    callpop_engine::secrets::complete_platform_credentials(&mut moved).expect("complete");
    assert!(moved.ringcentral.has_credentials(), "kept for the sandbox");
}

#[test]
fn moving_the_server_elsewhere_asks_first_and_then_clears_the_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, file, view) = with_credentials(dir.path(), "https://platform.ringcentral.com");
    let mut u = view.unchanged();
    u.ringcentral.server = "https://rc-proxy.example.com".into();
    assert_eq!(u.validate(&view), Ok(()));
    let asks = u.confirmations(&view);
    assert_eq!(asks.len(), 1, "{asks:?}");
    assert_eq!(asks[0].field, "ringcentral.server");
    assert!(asks[0].question.contains("removed"), "{asks:?}");

    u.confirmed = true;
    assert!(u.confirmations(&view).is_empty());
    u.save(&config, &file).expect("save");
    let moved = load(dir.path(), &file);
    for name in [names::RINGCENTRAL_CLIENT_SECRET, names::RINGCENTRAL_JWT] {
        assert!(
            callpop_engine::secrets::stored(&moved, name)
                .expect("stored")
                .is_none(),
            "{name} cleared"
        );
    }
    let shown = SettingsView::from_config(&moved);
    assert!(!shown.ringcentral.client_secret_set && !shown.ringcentral.jwt_set);
}

#[test]
fn a_server_changed_in_the_file_does_not_get_the_stored_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, file, _) = with_credentials(dir.path(), "https://platform.ringcentral.com");
    let text = std::fs::read_to_string(&file).expect("read");
    let edited = text.replace(
        "https://platform.ringcentral.com",
        "https://collector.example.net",
    );
    assert_ne!(text, edited, "{text}");
    std::fs::write(&file, edited).expect("write");
    let mut config = load(dir.path(), &file);
    callpop_engine::secrets::complete_platform_credentials(&mut config).expect("complete");
    assert!(config.ringcentral.client_secret.is_none() && config.ringcentral.jwt.is_none());
    let shown = SettingsView::from_config(&config);
    assert!(!shown.ringcentral.client_secret_set && !shown.ringcentral.jwt_set);

    // A new JWT alone, for the edited server: the old client secret is not handed to it.
    let mut u = shown.unchanged();
    u.ringcentral.jwt = Some("new.jwt.value".into());
    u.confirmed = true;
    u.save(&config, &file).expect("save");
    let mut again = load(dir.path(), &file);
    callpop_engine::secrets::complete_platform_credentials(&mut again).expect("complete");
    assert!(
        again.ringcentral.client_secret.is_none(),
        "the old secret stays behind"
    );
    assert_eq!(
        again.ringcentral.jwt.as_ref().map(|j| j.expose()),
        Some("new.jwt.value")
    );
}

#[test]
fn moving_the_server_back_to_where_the_credentials_belong_keeps_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, file, _) = with_credentials(dir.path(), "https://platform.ringcentral.com");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(
        &file,
        text.replace(
            "https://platform.ringcentral.com",
            "https://collector.example.net",
        ),
    )
    .expect("write");
    let config = load(dir.path(), &file);
    let mut u = SettingsView::from_config(&config).unchanged();
    u.ringcentral.server = "https://platform.ringcentral.com".into();
    u.save(&config, &file).expect("save");
    let mut back = load(dir.path(), &file);
    callpop_engine::secrets::complete_platform_credentials(&mut back).expect("complete");
    assert!(back.ringcentral.has_credentials(), "still theirs");
}

#[test]
fn a_new_public_url_is_saved_only_once_confirmed() {
    let (dir, config, view) = fresh();
    let file = dir.path().join("config.toml");
    let mut u = view.unchanged();
    u.tunnel.mode = TunnelModeView::Provided;
    u.tunnel.public_url = "https://calls.dealer.example/".into();
    let asks = u.confirmations(&view);
    assert_eq!(asks.len(), 1, "{asks:?}");
    assert_eq!(asks[0].field, "tunnel.public_url");
    assert!(
        asks[0].question.contains("https://calls.dealer.example"),
        "{asks:?}"
    );
    u.confirmed = true;
    u.save(&config, &file).expect("save");
    let saved = SettingsView::from_config(&load(dir.path(), &file));
    assert_eq!(saved.tunnel.public_url, "https://calls.dealer.example");
    // Saving it again unchanged asks nothing; another one asks again.
    assert!(saved.unchanged().confirmations(&saved).is_empty());
    let mut again = saved.unchanged();
    again.tunnel.public_url = "https://elsewhere.example".into();
    assert_eq!(again.confirmations(&saved).len(), 1);
}
