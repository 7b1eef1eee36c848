//! `callpop contacts` end to end (issue 29): a CRM export imported into the real history file,
//! a dry run that keeps nothing, a re-import that changes nothing, a bad file refused whole.

use crate::common::*;

fn import(
    dir: &std::path::Path,
    file: &std::path::Path,
    extra: &[&str],
) -> (bool, serde_json::Value, String) {
    let mut args = vec!["contacts", "import", file.to_str().expect("path"), "--json"];
    args.extend_from_slice(extra);
    let out = run(dir, &args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_crm_export_is_previewed_imported_once_and_a_bad_file_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = dir.path().join("crm.csv");
    std::fs::write(
        &file,
        "\u{feff}Last Name;First Name;Company;Mobile Phone;Sales Rep;Notes\r\n\
         Whitfield;Dana;Whitfield Auto Body;(415) 555-0123;Sarah;\"Wants the F-150.\nCall after 3.\"\r\n\
         Nguyen;Bao;;call me;;\r\n",
    )
    .expect("write");
    let (ok, dry, err) = import(&data, &file, &["--dry-run"]);
    assert!(ok, "{err}");
    assert_eq!(
        (dry["new"].as_u64(), dry["dry_run"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(dry["rejected"][0]["line"], 4);
    let listed = run(&data, &["contacts", "list", "--json"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).trim().is_empty(),
        "a dry run keeps nothing"
    );
    let (ok, done, err) = import(&data, &file, &[]);
    assert!(ok, "{err}");
    assert_eq!(done["new"], 1);
    let (_, again, _) = import(&data, &file, &[]);
    assert_eq!(
        (again["new"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(1))
    );
    let listed = run(&data, &["contacts", "list", "--json"]);
    let dana: serde_json::Value =
        serde_json::from_slice(&listed.stdout).expect("one contact as JSON");
    assert_eq!(dana["name"], "Dana Whitfield");
    assert_eq!(dana["owner"], "Sarah");
    assert_eq!(dana["phones"][0]["e164"], "+14155550123");
    // Found by a name typed without care, or by digits; exported and read back unchanged.
    let found = run(&data, &["contacts", "search", "WHITFIELD"]);
    assert!(String::from_utf8_lossy(&found.stdout).contains("Dana Whitfield"));
    let found = run(&data, &["contacts", "search", "555-0123"]);
    assert!(String::from_utf8_lossy(&found.stdout).contains("Dana Whitfield"));
    let exported = dir.path().join("contacts.csv");
    let out = run(
        &data,
        &[
            "contacts",
            "export",
            "--out",
            exported.to_str().expect("path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, back, _) = import(&data, &exported, &["--dry-run"]);
    assert_eq!(
        (back["new"].as_u64(), back["unchanged"].as_u64()),
        (Some(0), Some(1)),
        "{back}"
    );
    // Not UTF-8: refused with a reason, and what is stored stays.
    let bad = dir.path().join("latin1.csv");
    std::fs::write(&bad, b"Name,Phone\nJos\xe9,4155550199\n").expect("write");
    let (ok, _, err) = import(&data, &bad, &[]);
    assert!(!ok);
    assert!(err.contains("not UTF-8"), "{err}");
    assert_eq!(count(&data, "SELECT count(*) FROM contacts"), 1);
}
