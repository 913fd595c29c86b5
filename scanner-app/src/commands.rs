//! The Tauri commands: each forwards to one `scanner_core::App` method and
//! hands errors to the window as `CommandError` (code + words). Types are
//! declared in `ui/bindings.d.ts`, generated from `scanner_core::view`.

use crate::Shared;
use scanner_core::camera;
use scanner_core::view::{
    AppStatus, CommandError, Counts, GateChoice, ScanView, SearchResults, SignedIn, SyncView,
};
use tauri::{AppHandle, Emitter, State};

type Answer<T> = Result<T, CommandError>;

/// Event with a camera result (`ScanView` or `CommandError`).
pub const CAMERA_SCAN_EVENT: &str = "camera-scan";
/// Event with a camera preview (PNG data URL).
pub const CAMERA_PREVIEW_EVENT: &str = "camera-preview";

#[tauri::command]
pub async fn status(s: State<'_, Shared>) -> Answer<AppStatus> {
    Ok(s.app.status())
}

#[tauri::command]
pub async fn sign_in(
    s: State<'_, Shared>,
    cloud_url: String,
    email: String,
    password: String,
) -> Answer<SignedIn> {
    Ok(s.app.sign_in(&cloud_url, &email, &password).await?)
}

#[tauri::command]
pub async fn enroll_for(s: State<'_, Shared>, choice: GateChoice) -> Answer<AppStatus> {
    Ok(s.app.enroll_for(choice).await?)
}

#[tauri::command]
pub async fn enroll_with_code(
    s: State<'_, Shared>,
    cloud_url: String,
    code: String,
    operator: String,
    pin: String,
) -> Answer<AppStatus> {
    Ok(s.app
        .enroll_with_code(&cloud_url, &code, &operator, &pin)
        .await?)
}

#[tauri::command]
pub async fn scan(s: State<'_, Shared>, text: String) -> Answer<ScanView> {
    Ok(s.app.scan(&text)?)
}

#[tauri::command]
pub async fn search(s: State<'_, Shared>, query: String) -> Answer<SearchResults> {
    Ok(s.app.search(&query)?)
}

#[tauri::command]
pub async fn check_in_manually(
    s: State<'_, Shared>,
    ticket_id: String,
    reason: String,
) -> Answer<ScanView> {
    Ok(s.app.check_in_manually(&ticket_id, &reason)?)
}

#[tauri::command]
pub async fn set_direction(s: State<'_, Shared>, direction: String) -> Answer<AppStatus> {
    Ok(s.app.set_direction(&direction)?)
}

#[tauri::command]
pub async fn counts(s: State<'_, Shared>) -> Answer<Counts> {
    Ok(s.app.counts()?)
}

#[tauri::command]
pub async fn sync_state(s: State<'_, Shared>) -> Answer<SyncView> {
    Ok(s.app.sync_state()?)
}

#[tauri::command]
pub async fn lock(s: State<'_, Shared>) -> Answer<AppStatus> {
    Ok(s.app.lock()?)
}

#[tauri::command]
pub async fn unlock(s: State<'_, Shared>, pin: String) -> Answer<AppStatus> {
    Ok(s.app.unlock(&pin)?)
}

#[tauri::command]
pub async fn set_pin(s: State<'_, Shared>, pin: String) -> Answer<AppStatus> {
    Ok(s.app.set_pin(&pin)?)
}

/// Starts the camera (the webcam, or the injected frame folder).
#[tauri::command]
pub async fn camera_start(window: AppHandle, s: State<'_, Shared>) -> Answer<bool> {
    let device = s.app.device()?;
    let mut held = s.camera.lock().unwrap_or_else(|p| p.into_inner());
    if held.as_ref().is_some_and(|c| !c.finished()) {
        return Ok(true);
    }
    let (w1, w2) = (window.clone(), window);
    let run = camera::start(
        device,
        &s.camera_input,
        move |result| {
            let _ = match result {
                Ok(view) => w1.emit(CAMERA_SCAN_EVENT, view),
                Err(e) => w1.emit(CAMERA_SCAN_EVENT, CommandError::from(e)),
            };
        },
        move |png| {
            let _ = w2.emit(CAMERA_PREVIEW_EVENT, png);
        },
    )?;
    *held = Some(run);
    Ok(true)
}

#[tauri::command]
pub async fn camera_stop(s: State<'_, Shared>) -> Answer<bool> {
    let run = s.camera.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(run);
    Ok(false)
}
