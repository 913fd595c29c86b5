//! The whole app without a window: one [`App`] per process, whose methods
//! are the Tauri commands one for one (the shell only forwards). It owns the
//! data folder (the store, `scanner.json` settings), the staff session while
//! setting up, the running [`Device`] and the [`Lock`].

use crate::device::{Device, SyncConfig};
use crate::error::AppError;
use crate::lock::{Lock, PinHash};
use crate::session::StaffSession;
use crate::view::{
    AppStatus, AttendeeView, Counts, GateChoice, Phase, Role, ScanView, SearchResults, SignedIn,
    SyncView,
};
use crate::words::direction_label;
use gate_node::cloud::CloudClient;
use gate_node::provision;
use gate_node::store::Store;
use gate_node::time::Clock;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use sync_protocol::Direction;
use sync_protocol::manifest::EntryStatus;
use time::UtcOffset;

/// Most search hits returned to the window.
pub const SEARCH_LIMIT: usize = 25;

/// Settings kept next to the store.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Settings {
    operator: Option<String>,
    pin: Option<PinHash>,
}

/// The app.
#[derive(Debug)]
pub struct App {
    data_dir: PathBuf,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    sync: SyncConfig,
    offset: UtcOffset,
    state: Mutex<State>,
    device: Mutex<Option<Arc<Device>>>,
}

#[derive(Debug)]
struct State {
    settings: Settings,
    lock: Lock,
    session: Option<StaffSession>,
}

fn random_seed() -> Result<[u8; 32], AppError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| AppError::Invalid(format!("no randomness for the device key: {e}")))?;
    Ok(seed)
}

impl App {
    /// Opens (creating) the data folder. Call [`App::resume`] next, inside
    /// the tokio runtime, to start an already enrolled device.
    pub fn open(
        data_dir: &Path,
        clock: Arc<dyn Clock>,
        sync: SyncConfig,
        offset: UtcOffset,
    ) -> Result<Self, AppError> {
        let store = Arc::new(Store::open_in(data_dir)?);
        let settings: Settings = match std::fs::read(data_dir.join("scanner.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                AppError::Invalid(format!("scanner.json is damaged ({e}): fix or remove it"))
            })?,
            Err(_) => Settings::default(),
        };
        let lock = Lock::new(settings.pin.clone());
        Ok(Self {
            data_dir: data_dir.to_owned(),
            store,
            clock,
            sync,
            offset,
            state: Mutex::new(State {
                settings,
                lock,
                session: None,
            }),
            device: Mutex::new(None),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, state: &State) -> Result<(), AppError> {
        let mut settings = state.settings.clone();
        settings.pin = state.lock.pin().cloned();
        let bytes =
            serde_json::to_vec_pretty(&settings).map_err(|e| AppError::Invalid(e.to_string()))?;
        let tmp = self.data_dir.join("scanner.json.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, self.data_dir.join("scanner.json")))
            .map_err(|e| AppError::Invalid(format!("cannot save settings: {e}")))
    }

    /// The running device, or [`AppError::NotEnrolled`].
    pub fn device(&self) -> Result<Arc<Device>, AppError> {
        self.device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(AppError::NotEnrolled)
    }

    /// Starts the device if the store is enrolled (at every launch).
    pub async fn resume(&self) -> Result<(), AppError> {
        if self.store.identity().is_none() || self.device().is_ok() {
            return Ok(());
        }
        let operator = self.state().settings.operator.clone().unwrap_or_default();
        let device = Device::start(
            self.store.clone(),
            self.clock.clone(),
            &operator,
            &self.sync,
            self.offset,
        )
        .await?;
        *self.device.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(device));
        Ok(())
    }

    /// Header state.
    pub fn status(&self) -> AppStatus {
        let identity = self.store.identity();
        let device = self.device().ok();
        let state = self.state();
        AppStatus {
            phase: if device.is_some() {
                Phase::Ready
            } else {
                Phase::Setup
            },
            role: state.lock.role(),
            pin_set: state.lock.pin_set(),
            event_id: identity.as_ref().map(|i| i.event_id.to_string()),
            gate: identity.as_ref().map(|i| i.gate.clone()),
            direction: direction_label(device.map_or(Direction::Entry, |d| d.direction())).into(),
            operator: state.settings.operator.clone(),
            node_id: identity.map(|i| i.node_id.to_string()),
        }
    }

    /// Signs in with a staff account; lists the events to pick from.
    pub async fn sign_in(
        &self,
        cloud_url: &str,
        email: &str,
        password: &str,
    ) -> Result<SignedIn, AppError> {
        if self.store.identity().is_some() {
            return Err(AppError::AlreadyEnrolled);
        }
        let session = StaffSession::sign_in(cloud_url, email, password).await?;
        let answer = session.signed_in().await?;
        self.state().session = Some(session);
        Ok(answer)
    }

    /// Enrolls this device for a gate of the event picked after sign-in.
    pub async fn enroll_for(&self, choice: GateChoice) -> Result<AppStatus, AppError> {
        let session = self.state().session.clone().ok_or(AppError::NotSignedIn)?;
        let gate = choice.gate.trim();
        if gate.is_empty() || gate.len() > 64 {
            return Err(AppError::Invalid(
                "name the gate (1 to 64 characters)".into(),
            ));
        }
        let pin = PinHash::new(&choice.pin)?;
        if self.store.identity().is_some() {
            return Err(AppError::AlreadyEnrolled);
        }
        let seed = random_seed()?;
        let bundle = session
            .enroll_device(&choice.event_id, gate, choice.zone, &device_name(), &seed)
            .await?;
        self.install(&session.cloud_url, bundle, seed, &session.email, pin)
            .await?;
        self.state().session = None;
        Ok(self.status())
    }

    /// Enrolls with a code from the organizer, like a gate node.
    pub async fn enroll_with_code(
        &self,
        cloud_url: &str,
        code: &str,
        operator: &str,
        pin: &str,
    ) -> Result<AppStatus, AppError> {
        let operator = operator.trim();
        if operator.is_empty() || operator.len() > 40 {
            return Err(AppError::Invalid(
                "give your name (1 to 40 characters)".into(),
            ));
        }
        let pin = PinHash::new(pin)?;
        self.enroll(
            cloud_url.trim().trim_end_matches('/'),
            code.trim(),
            operator,
            pin,
        )
        .await?;
        Ok(self.status())
    }

    /// Sets the device up from an offline provisioning bundle (the same
    /// JSON a gate node takes with `gate-node provision`): no cloud at all.
    pub async fn enroll_with_bundle(
        &self,
        bundle: &provision::Bundle,
        operator: &str,
        pin: &str,
    ) -> Result<AppStatus, AppError> {
        if self.store.identity().is_some() {
            return Err(AppError::AlreadyEnrolled);
        }
        let pin = PinHash::new(pin)?;
        provision::import(&self.store, bundle, random_seed()?)?;
        self.finish_setup(operator, pin)?;
        self.resume().await?;
        Ok(self.status())
    }

    fn finish_setup(&self, operator: &str, pin: PinHash) -> Result<(), AppError> {
        let mut state = self.state();
        state.settings.operator = Some(operator.to_owned());
        state.lock = Lock::new(Some(pin));
        // The person who just set the device up keeps the supervisor role
        // until they lock it.
        state.lock.unlock_after_setup();
        self.save(&state)
    }

    async fn enroll(
        &self,
        cloud_url: &str,
        code: &str,
        operator: &str,
        pin: PinHash,
    ) -> Result<(), AppError> {
        if self.store.identity().is_some() {
            return Err(AppError::AlreadyEnrolled);
        }
        let seed = random_seed()?;
        let client = CloudClient::new(cloud_url, None, Duration::from_secs(15))
            .map_err(|e| AppError::cloud(cloud_url, e))?;
        let bundle = client
            .enroll(code, &device_name(), &seed)
            .await
            .map_err(|e| AppError::cloud(cloud_url, e))?;
        self.install(cloud_url, bundle, seed, operator, pin).await
    }

    /// Stores what an enrollment (either path) handed this device and starts it.
    async fn install(
        &self,
        cloud_url: &str,
        mut bundle: provision::Bundle,
        seed: [u8; 32],
        operator: &str,
        pin: PinHash,
    ) -> Result<(), AppError> {
        bundle.cloud_url = Some(cloud_url.to_owned());
        provision::import(&self.store, &bundle, seed)?;
        self.finish_setup(operator, pin)?;
        self.resume().await
    }

    /// Scans a typed, pasted or wedge-scanned code.
    pub fn scan(&self, text: &str) -> Result<ScanView, AppError> {
        self.device()?.scan(text)
    }

    /// Searches attendees by name or ticket id.
    pub fn search(&self, query: &str) -> Result<SearchResults, AppError> {
        let device = self.device()?;
        let (entries, total) = device.with_index(|ix| {
            let (hits, total) = ix.search(query, SEARCH_LIMIT);
            (hits.into_iter().cloned().collect::<Vec<_>>(), total)
        })?;
        let hits = entries
            .into_iter()
            .map(|e| {
                // The index may be a version behind while it is rebuilt:
                // what is shown comes from the store.
                let e = device.store().manifest_entry(&e.ticket_id)?.unwrap_or(e);
                let (presence, inside) = device.presence_words(&e.ticket_id)?;
                Ok(AttendeeView {
                    ticket_id: e.ticket_id.to_string(),
                    display_name: e.display_name,
                    tier: e.tier,
                    status: match e.status {
                        EntryStatus::Valid => "valid".into(),
                        EntryStatus::Revoked => "revoked".into(),
                    },
                    presence,
                    inside,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok(SearchResults {
            hits,
            total: total as u32,
        })
    }

    /// Manual check-in (supervisor).
    pub fn check_in_manually(&self, ticket_id: &str, reason: &str) -> Result<ScanView, AppError> {
        self.state().lock.require_supervisor()?;
        self.device()?.check_in_manually(ticket_id, reason)
    }

    /// Entry or exit mode (supervisor).
    pub fn set_direction(&self, direction: &str) -> Result<AppStatus, AppError> {
        self.state().lock.require_supervisor()?;
        let d = match direction {
            "entry" => Direction::Entry,
            "exit" => Direction::Exit,
            other => return Err(AppError::Invalid(format!("no such mode {other:?}"))),
        };
        self.device()?.set_direction(d);
        Ok(self.status())
    }

    /// Door counts.
    pub fn counts(&self) -> Result<Counts, AppError> {
        self.device()?.counts()
    }

    /// The sync bar.
    pub fn sync_state(&self) -> Result<SyncView, AppError> {
        self.device()?.sync_view()
    }

    /// Kiosk mode: steward until the PIN is given.
    pub fn lock(&self) -> Result<AppStatus, AppError> {
        self.state().lock.lock()?;
        Ok(self.status())
    }

    /// Supervisor with the PIN.
    pub fn unlock(&self, pin: &str) -> Result<AppStatus, AppError> {
        let now = self.clock.system_ms();
        self.state().lock.unlock(pin, now)?;
        Ok(self.status())
    }

    /// Changes the PIN (supervisor).
    pub fn set_pin(&self, pin: &str) -> Result<AppStatus, AppError> {
        {
            let mut state = self.state();
            state.lock.set_pin(pin)?;
            self.save(&state)?;
        }
        Ok(self.status())
    }

    /// The role in force.
    pub fn role(&self) -> Role {
        self.state().lock.role()
    }

    /// Stops the device's tasks (at exit).
    pub fn shutdown(&self) {
        if let Ok(d) = self.device() {
            d.shutdown();
        }
    }
}

/// The name this device gives the cloud (the organizer's device list shows it).
fn device_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "laptop".into());
    format!("scanner-app {host}")
}
