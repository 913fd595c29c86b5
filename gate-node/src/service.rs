//! Talking to systemd (`Type=notify`, `WatchdogSec=`): readiness once the
//! local API listens, and a watchdog ping only while the node can still do
//! its job.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call here does nothing. Each
//! ping first reads the store on a blocking thread: a node whose store is
//! wedged (a stuck lock, a dead SD card) or whose runtime no longer runs its
//! timers stops pinging, and systemd kills and restarts it
//! (`Restart=always`). A scan acknowledged before that is already durable.

use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Tells systemd the node is ready (`READY=1`) with a status line.
pub fn ready(status: &str) {
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// Tells systemd the node is stopping (`STOPPING=1`).
pub fn stopping() {
    notify(&[sd_notify::NotifyState::Stopping]);
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// The ping interval systemd asked for (half its `WatchdogSec`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|t| !t.is_zero())
        .map(|t| t / 2)
}

/// Pings the watchdog every `every` while the store answers, until `stop`.
pub async fn watchdog(store: Arc<Store>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let probe = store.clone();
        match tokio::task::spawn_blocking(move || probe.hlc_last()).await {
            Ok(Ok(_)) => notify(&[sd_notify::NotifyState::Watchdog]),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "store check failed: not pinging the watchdog")
            }
            Err(e) => tracing::error!(error = %e, "store check panicked: not pinging the watchdog"),
        }
    }
}
