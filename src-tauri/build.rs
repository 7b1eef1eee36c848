//! Builds the Tauri context from the top-level `tauri.conf.json`, and declares the app's own
//! commands so the capability file can allow exactly the ones the window uses.

use std::path::Path;

/// The commands the window calls, read from the generated bindings (`invoke<…>("name"`, not the events' `listen`), so
/// the Rust command list (crates/app/src/bindings.rs) stays the only place they are written down.
fn window_commands(bindings: &Path) -> Vec<&'static str> {
    let text = std::fs::read_to_string(bindings)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", bindings.display()));
    text.lines()
        .filter_map(|line| {
            let after = line.split_once("invoke<")?.1.split_once(">(\"")?.1;
            let name = after.split_once('"')?.0;
            Some(&*Box::leak(name.to_string().into_boxed_str()))
        })
        .collect()
}

fn main() {
    let bindings = Path::new("../ui/src/bindings.ts");
    println!("cargo:rerun-if-changed={}", bindings.display());
    println!("cargo:rerun-if-changed=../ui/dist");
    let commands = window_commands(bindings);
    assert!(
        !commands.is_empty(),
        "no commands found in {}",
        bindings.display()
    );
    let commands: &'static [&'static str] = Box::leak(commands.into_boxed_slice());
    let attributes = tauri_build::Attributes::new()
        .config_path("../tauri.conf.json")
        .app_manifest(tauri_build::AppManifest::new().commands(commands));
    if let Err(e) = tauri_build::try_build(attributes) {
        panic!("tauri-build: {e:#}");
    }
}
