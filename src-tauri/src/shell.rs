//! The Tauri side: the window, the tray, the commands the window may call, and the events it
//! hears. Each command forwards to `callpop_app::app::App`; the tray shows `callpop_app::tray`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use callpop_app::app::{
    ActionResult, App, AppEvent, FoundHubRow, HealthAction, HubPanel, JoinRequest, LinkOutcome,
    PairingCode, RingotelToken, SaveResult,
};
use callpop_app::error::AppError;
use callpop_app::export::{ExportFolder, ExportRequest, ExportResult};
use callpop_app::settings::{GeneralView, SettingsUpdate, SettingsView};
use callpop_app::tray::{tray_status, TrayState};
use callpop_app::window::{CallDetail, CallPage, CallQuery};
use callpop_engine::config::Overrides;
use callpop_engine::engine::EngineOptions;
use callpop_engine::health::Snapshot;
use callpop_engine::popups::PauseState;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Emitter, Manager, RunEvent, State, WebviewUrl, WebviewWindowBuilder};
use tauri::{WindowEvent, Wry};
use tokio::sync::broadcast::error::RecvError;

/// The window's label (the capability file names it).
const MAIN_WINDOW: &str = "main";

/// What the shell keeps besides the engine.
struct Shell {
    app: Arc<App>,
    /// The close button hides the window instead of quitting.
    close_to_tray: AtomicBool,
    tray: Mutex<Option<TrayMenu>>,
    last_health: Mutex<Snapshot>,
    last_pause: Mutex<PauseState>,
}

/// The tray icon and the menu items that change.
struct TrayMenu {
    icon: TrayIcon,
    shown: Option<TrayState>,
    receiver: MenuItem<Wry>,
    tunnel: MenuItem<Wry>,
    subscription: MenuItem<Wry>,
    popups: MenuItem<Wry>,
    pause_hour: MenuItem<Wry>,
    pause_forever: MenuItem<Wry>,
    resume: MenuItem<Wry>,
}

type Shared<'a> = State<'a, Arc<Shell>>;

#[tauri::command]
async fn list_calls(shell: Shared<'_>, query: CallQuery) -> Result<CallPage, AppError> {
    shell.app.list_calls(query).await
}

#[tauri::command]
async fn get_call(shell: Shared<'_>, id: i64) -> Result<CallDetail, AppError> {
    shell.app.get_call(id).await
}

#[tauri::command]
async fn export_folders(shell: Shared<'_>) -> Result<Vec<ExportFolder>, AppError> {
    shell.app.export_folders().await
}

#[tauri::command]
async fn export_csv(shell: Shared<'_>, request: ExportRequest) -> Result<ExportResult, AppError> {
    shell.app.export_csv(request).await
}

#[tauri::command]
async fn open_export(shell: Shared<'_>, path: String) -> Result<(), AppError> {
    shell.app.open_export(path).await
}

#[tauri::command]
async fn show_export(shell: Shared<'_>, path: String) -> Result<(), AppError> {
    shell.app.show_export(path).await
}

#[tauri::command]
async fn play_voicemail(shell: Shared<'_>, id: i64) -> Result<String, AppError> {
    shell.app.play_voicemail(id).await
}

#[tauri::command]
async fn get_ringotel_token(shell: Shared<'_>) -> Result<RingotelToken, AppError> {
    shell.app.ringotel_token().await
}

#[tauri::command]
async fn open_link(shell: Shared<'_>, url: String) -> Result<LinkOutcome, AppError> {
    shell.app.open_link(url).await
}

#[tauri::command]
async fn get_settings(shell: Shared<'_>) -> Result<SettingsView, AppError> {
    shell.app.get_settings().await
}

#[tauri::command]
async fn save_settings(
    handle: AppHandle,
    shell: Shared<'_>,
    update: SettingsUpdate,
) -> Result<SaveResult, AppError> {
    let result = shell.app.save_settings(update).await?;
    if let SaveResult::Saved { settings, .. } = &result {
        apply_desktop_prefs(&handle, &shell, &settings.general);
    }
    Ok(result)
}

#[tauri::command]
async fn test_ringcentral(shell: Shared<'_>) -> Result<ActionResult, AppError> {
    Ok(shell.app.test_ringcentral().await)
}

#[tauri::command]
async fn get_health(shell: Shared<'_>) -> Result<Snapshot, AppError> {
    Ok(shell.app.get_health().await)
}

#[tauri::command]
async fn run_health_action(
    shell: Shared<'_>,
    action: HealthAction,
) -> Result<ActionResult, AppError> {
    Ok(shell.app.run_health_action(action).await)
}

#[tauri::command]
async fn get_pause(shell: Shared<'_>) -> Result<PauseState, AppError> {
    Ok(shell.app.get_pause().await)
}

#[tauri::command]
async fn set_pause(shell: Shared<'_>, minutes: Option<u32>) -> Result<PauseState, AppError> {
    shell.app.set_pause(minutes).await
}

#[tauri::command]
async fn resume(shell: Shared<'_>) -> Result<PauseState, AppError> {
    shell.app.resume().await
}

#[tauri::command]
async fn get_hub(shell: Shared<'_>) -> Result<HubPanel, AppError> {
    shell.app.get_hub().await
}

#[tauri::command]
async fn set_hub(shell: Shared<'_>, on: bool) -> Result<HubPanel, AppError> {
    shell.app.set_hub(on).await
}

#[tauri::command]
async fn hub_add_desk(shell: Shared<'_>, name: Option<String>) -> Result<PairingCode, AppError> {
    shell.app.hub_add_desk(name).await
}

#[tauri::command]
async fn hub_remove_desk(shell: Shared<'_>, name: String) -> Result<HubPanel, AppError> {
    shell.app.hub_remove_desk(name).await
}

#[tauri::command]
async fn find_hubs(shell: Shared<'_>) -> Result<Vec<FoundHubRow>, AppError> {
    shell.app.find_hubs().await
}

#[tauri::command]
async fn join_hub(shell: Shared<'_>, request: JoinRequest) -> Result<HubPanel, AppError> {
    shell.app.join_hub(request).await
}

#[tauri::command]
async fn leave_hub(shell: Shared<'_>) -> Result<HubPanel, AppError> {
    shell.app.leave_hub().await
}

/// Runs the desktop app until Quit.
pub fn run(start_hidden: bool, overrides: Overrides) -> tauri::Result<()> {
    let app = tauri::Builder::default()
        // First, so a second launch hands over before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|handle, _argv, _cwd| {
            tracing::info!("a second launch asked for the window");
            show_window(handle);
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .invoke_handler(tauri::generate_handler![
            list_calls,
            get_call,
            export_folders,
            export_csv,
            open_export,
            show_export,
            open_link,
            get_ringotel_token,
            play_voicemail,
            get_settings,
            save_settings,
            test_ringcentral,
            get_health,
            run_health_action,
            get_pause,
            set_pause,
            resume,
            get_hub,
            set_hub,
            hub_add_desk,
            hub_remove_desk,
            find_hubs,
            join_hub,
            leave_hub,
        ])
        .setup(move |tauri_app| {
            let handle = tauri_app.handle().clone();
            let log_dir = handle.path().app_log_dir()?;
            match crate::logging::init(&log_dir) {
                Ok(guard) => {
                    tauri_app.manage(guard);
                }
                Err(e) => eprintln!("CallPop: logging to a file is off: {e:#}"),
            }
            tracing::info!(version = env!("CARGO_PKG_VERSION"), log_dir = %log_dir.display(), "CallPop desktop starting");
            let app = Arc::new(tauri::async_runtime::block_on(App::start(
                overrides.clone(),
                EngineOptions {
                    window_available: true,
                    instance: None,
                },
            )));
            let shell = Arc::new(Shell {
                app: app.clone(),
                close_to_tray: AtomicBool::new(true),
                tray: Mutex::new(None),
                last_health: Mutex::new(Snapshot::default()),
                last_pause: Mutex::new(PauseState {
                    paused: false,
                    until: None,
                }),
            });
            tauri_app.manage(shell.clone());
            create_window(&handle, start_hidden)?;
            let tray = create_tray(&handle)?;
            *lock(&shell.tray) = Some(tray);
            tauri::async_runtime::block_on(async {
                if let Ok(settings) = app.get_settings().await {
                    apply_desktop_prefs(&handle, &shell, &settings.general);
                }
                *lock(&shell.last_health) = app.get_health().await;
                *lock(&shell.last_pause) = app.get_pause().await;
                refresh_tray(&shell).await;
            });
            tauri::async_runtime::spawn(forward_events(handle, shell.clone()));
            tauri::async_runtime::spawn(tick_tray(shell));
            tracing::info!("tray ready");
            Ok(())
        })
        .build(tauri::generate_context!("../tauri.conf.json"))?;
    app.run(|handle, event| {
        if let RunEvent::Exit = event {
            if let Some(shell) = handle.try_state::<Arc<Shell>>() {
                tracing::info!("quitting: stopping the engine");
                tauri::async_runtime::block_on(shell.app.shutdown());
                tracing::info!("engine stopped");
            }
        }
    });
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn create_window(handle: &AppHandle, start_hidden: bool) -> tauri::Result<()> {
    let window =
        WebviewWindowBuilder::new(handle, MAIN_WINDOW, WebviewUrl::App("index.html".into()))
            .title("CallPop")
            .inner_size(1180.0, 760.0)
            .min_inner_size(820.0, 540.0)
            .visible(!start_hidden)
            .on_navigation(|url| {
                if is_own_page(url) {
                    return true;
                }
                // Recordings, CRM links and phone numbers open where the desktop opens them;
                // the window itself never leaves CallPop.
                if matches!(url.scheme(), "http" | "https" | "tel" | "mailto") {
                    if let Err(e) = tauri_plugin_opener::open_url(url.as_str(), None::<&str>) {
                        tracing::warn!(url = %url, "cannot open link: {e}");
                    }
                } else {
                    tracing::warn!(url = %url, "blocked navigation");
                }
                false
            })
            .build()?;
    let handle = handle.clone();
    window.on_window_event(move |event| {
        if let WindowEvent::CloseRequested { api, .. } = event {
            let Some(shell) = handle.try_state::<Arc<Shell>>() else {
                return;
            };
            if shell.close_to_tray.load(Ordering::Relaxed) {
                api.prevent_close();
                if let Some(w) = handle.get_webview_window(MAIN_WINDOW) {
                    let _ = w.hide();
                }
                let shell = Arc::clone(shell.inner());
                tauri::async_runtime::spawn(async move {
                    shell.app.closed_to_tray().await;
                });
            } else {
                handle.exit(0);
            }
        }
    });
    Ok(())
}

/// The app's own pages: the whole origin is compared, so a link to
/// `https://tauri.localhost:8443/` opens in the browser instead of replacing the window.
fn is_own_page(url: &tauri::Url) -> bool {
    callpop_core::links::is_app_origin(url.scheme(), url.host_str(), url.port())
}

fn show_window(handle: &AppHandle) {
    if let Some(w) = handle.get_webview_window(MAIN_WINDOW) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

fn tray_image(state: TrayState) -> tauri::Result<Image<'static>> {
    let bytes: &'static [u8] = match state {
        TrayState::Healthy => include_bytes!("../../icons/tray-healthy.png"),
        TrayState::Degraded => include_bytes!("../../icons/tray-degraded.png"),
        TrayState::Offline => include_bytes!("../../icons/tray-offline.png"),
        TrayState::Paused => include_bytes!("../../icons/tray-paused.png"),
    };
    Image::from_bytes(bytes)
}

fn create_tray(handle: &AppHandle) -> tauri::Result<TrayMenu> {
    let open = MenuItem::with_id(handle, "open", "Open CallPop", true, None::<&str>)?;
    let receiver = MenuItem::with_id(
        handle,
        "status-receiver",
        "Receiver: starting",
        false,
        None::<&str>,
    )?;
    let tunnel = MenuItem::with_id(
        handle,
        "status-tunnel",
        "Tunnel: starting",
        false,
        None::<&str>,
    )?;
    let subscription = MenuItem::with_id(
        handle,
        "status-subscription",
        "Subscription: starting",
        false,
        None::<&str>,
    )?;
    let popups = MenuItem::with_id(handle, "status-popups", "Popups on", false, None::<&str>)?;
    let pause_hour = MenuItem::with_id(
        handle,
        "pause-hour",
        "Pause popups for 1 hour",
        true,
        None::<&str>,
    )?;
    let pause_forever = MenuItem::with_id(
        handle,
        "pause-forever",
        "Pause popups until resumed",
        true,
        None::<&str>,
    )?;
    let resume = MenuItem::with_id(handle, "resume", "Resume popups", false, None::<&str>)?;
    let quit = MenuItem::with_id(handle, "quit", "Quit CallPop", true, None::<&str>)?;
    let menu = Menu::with_items(
        handle,
        &[
            &open,
            &PredefinedMenuItem::separator(handle)?,
            &receiver,
            &tunnel,
            &subscription,
            &popups,
            &PredefinedMenuItem::separator(handle)?,
            &pause_hour,
            &pause_forever,
            &resume,
            &PredefinedMenuItem::separator(handle)?,
            &quit,
        ],
    )?;
    let icon = TrayIconBuilder::with_id("callpop")
        .icon(tray_image(TrayState::Offline)?)
        .tooltip("CallPop")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|handle, event| on_menu(handle, event.id().as_ref()))
        .build(handle)?;
    Ok(TrayMenu {
        icon,
        shown: None,
        receiver,
        tunnel,
        subscription,
        popups,
        pause_hour,
        pause_forever,
        resume,
    })
}

fn on_menu(handle: &AppHandle, id: &str) {
    let Some(shell) = handle.try_state::<Arc<Shell>>() else {
        return;
    };
    let shell = shell.inner().clone();
    match id {
        "open" => show_window(handle),
        "pause-hour" | "pause-forever" | "resume" => {
            let id = id.to_string();
            tauri::async_runtime::spawn(async move {
                let result = match id.as_str() {
                    "pause-hour" => shell.app.set_pause(Some(60)).await,
                    "pause-forever" => shell.app.set_pause(None).await,
                    _ => shell.app.resume().await,
                };
                if let Err(e) = result {
                    tracing::warn!("tray {id}: {e}");
                }
            });
        }
        "quit" => handle.exit(0),
        _ => {}
    }
}

/// Applies the desktop-only preferences after start and after every save.
fn apply_desktop_prefs(handle: &AppHandle, shell: &Shell, general: &GeneralView) {
    use tauri_plugin_autostart::ManagerExt;
    shell
        .close_to_tray
        .store(general.close_to_tray, Ordering::Relaxed);
    let autolaunch = handle.autolaunch();
    let result = match (autolaunch.is_enabled(), general.autostart) {
        (Ok(true), false) => autolaunch.disable(),
        (Ok(false), true) => autolaunch.enable(),
        (Ok(_), _) => Ok(()),
        (Err(e), _) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(
            wanted = general.autostart,
            "cannot change start at login: {e}"
        );
    }
}

/// Redraws the tray from the last health board and pause state.
async fn refresh_tray(shell: &Shell) {
    let engine_error = shell.app.start_error().await;
    let pause = *lock(&shell.last_pause);
    let status = tray_status(
        &lock(&shell.last_health),
        engine_error.as_deref(),
        &pause,
        chrono::Utc::now(),
    );
    let mut tray = lock(&shell.tray);
    let Some(tray) = tray.as_mut() else {
        return;
    };
    let result = (|| -> tauri::Result<()> {
        if tray.shown != Some(status.state) {
            tray.icon.set_icon(Some(tray_image(status.state)?))?;
            tray.shown = Some(status.state);
        }
        tray.icon.set_tooltip(Some(&status.tooltip))?;
        tray.receiver.set_text(&status.receiver)?;
        tray.tunnel.set_text(&status.tunnel)?;
        tray.subscription.set_text(&status.subscription)?;
        tray.popups.set_text(&status.popups)?;
        let popups_paused = pause.paused;
        tray.pause_hour.set_enabled(!popups_paused)?;
        tray.pause_forever.set_enabled(!popups_paused)?;
        tray.resume.set_enabled(popups_paused)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!("cannot update the tray: {e}");
    }
}

/// Engine changes → window events and tray updates.
async fn forward_events(handle: AppHandle, shell: Arc<Shell>) {
    let mut events = shell.app.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                tracing::debug!("window events lagged by {n}");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let sent = match event {
            AppEvent::CallChanged(call) => handle.emit("call-changed", &*call),
            AppEvent::HealthChanged(snapshot) => {
                *lock(&shell.last_health) = (*snapshot).clone();
                refresh_tray(&shell).await;
                handle.emit("health-changed", &*snapshot)
            }
            AppEvent::OpenCall(id) => {
                show_window(&handle);
                handle.emit("open-call", id)
            }
            AppEvent::PauseChanged(pause) => {
                *lock(&shell.last_pause) = pause;
                refresh_tray(&shell).await;
                handle.emit("pause-changed", pause)
            }
        };
        if let Err(e) = sent {
            tracing::warn!("cannot reach the window: {e}");
        }
    }
}

/// A timed pause ends without an event: look once a minute.
async fn tick_tray(shell: Arc<Shell>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        *lock(&shell.last_pause) = shell.app.get_pause().await;
        refresh_tray(&shell).await;
    }
}
