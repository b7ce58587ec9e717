//! systemd integration (`Type=notify`): READY=1 once enforcing, RELOADING=1 with
//! MONOTONIC_USEC around each reload, STATUS= lines, WATCHDOG=1 pings when the unit sets
//! `WatchdogSec=`. Every call is a no-op outside systemd (no `NOTIFY_SOCKET`), and a failure to
//! notify is logged, never fatal: enforcement matters more than the service manager's view.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// How often to ping the watchdog: half its timeout, when the unit enables it.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}
