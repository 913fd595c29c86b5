//! The app's one error type. Every variant says what the person at the
//! door should do next; commands hand it to the window as a
//! [`CommandError`] with a stable code.

use crate::view::CommandError;
use gate_node::cloud::CloudError;
use gate_node::engine::EngineError;
use gate_node::provision::ProvisionError;
use gate_node::store::StoreError;

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Needs an enrolled device.
    #[error("this device is not set up yet: sign in or enter an enrollment code first")]
    NotEnrolled,
    /// Already set up.
    #[error("this device is already set up for an event; use a fresh data folder to change it")]
    AlreadyEnrolled,
    /// Sign in first.
    #[error("sign in with your staff account first")]
    NotSignedIn,
    /// Email or password refused.
    #[error("the cloud refused that email and password: check them and try again")]
    BadLogin,
    /// The cloud could not be reached (setup needs it once; scanning never does).
    #[error(
        "cannot reach the cloud at {url}: check the network or use an enrollment code later ({detail})"
    )]
    CloudUnreachable {
        /// Where.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The cloud said no.
    #[error("the cloud refused: {0}")]
    Cloud(String),
    /// Needs the supervisor role.
    #[error("only a supervisor can do this: unlock with the PIN first")]
    NeedsSupervisor,
    /// Wrong PIN.
    #[error("wrong PIN")]
    WrongPin,
    /// Too many wrong PINs.
    #[error("too many wrong PINs: wait {secs} s and try again")]
    PinLockedOut {
        /// Seconds left.
        secs: u64,
    },
    /// Input that is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The local database failed; the scan was not recorded.
    #[error("the local database failed, the scan was NOT recorded: {0}; call a supervisor")]
    Store(#[from] StoreError),
    /// The camera could not be used.
    #[error("camera: {0}")]
    Camera(String),
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => Self::Store(s),
        }
    }
}

impl From<ProvisionError> for AppError {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Store(s) => Self::Store(s),
            other => Self::Cloud(other.to_string()),
        }
    }
}

impl AppError {
    /// A cloud call failed at `url`.
    pub fn cloud(url: &str, e: CloudError) -> Self {
        match e {
            CloudError::Unreachable(detail) => Self::CloudUnreachable {
                url: url.to_owned(),
                detail,
            },
            other => Self::Cloud(other.to_string()),
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotEnrolled => "not_enrolled",
            Self::AlreadyEnrolled => "already_enrolled",
            Self::NotSignedIn => "not_signed_in",
            Self::BadLogin => "bad_login",
            Self::CloudUnreachable { .. } => "cloud_unreachable",
            Self::Cloud(_) => "cloud_refused",
            Self::NeedsSupervisor => "needs_supervisor",
            Self::WrongPin => "wrong_pin",
            Self::PinLockedOut { .. } => "pin_locked_out",
            Self::Invalid(_) => "invalid",
            Self::Store(_) => "store_failed",
            Self::Camera(_) => "camera",
        }
    }
}

impl From<AppError> for CommandError {
    fn from(e: AppError) -> Self {
        Self {
            code: e.code().into(),
            message: e.to_string(),
        }
    }
}
