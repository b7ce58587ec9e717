//! The one guard for a child process the test started (jumpd, journald, a lingering probe):
//! it is ended by its pid when the guard goes — SIGTERM, then SIGKILL after a grace period —
//! and reaped, so no test leaves a process behind, also on failure.

use std::{
    process::{Child, ExitStatus},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};

use crate::poll_until;

pub struct Guarded {
    pub child: Child,
    /// How long `stop` waits after SIGTERM before SIGKILL.
    grace: Duration,
}

impl Guarded {
    /// Guards `child`, giving it 10 s to stop after SIGTERM.
    pub fn new(child: Child) -> Self {
        Self::with_grace(child, Duration::from_secs(10))
    }

    pub fn with_grace(child: Child, grace: Duration) -> Self {
        Self { child, grace }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: Signal) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), sig);
    }

    /// Its exit status, if it has exited (reaping it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `within` for it to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        poll_until(within, "the child to exit", || self.exited()).ok()
    }

    /// SIGKILL, as a crash would: no cleanup of its own runs.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// SIGTERM, then wait; SIGKILL after the grace period.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(s) = self.exited() {
            return Some(s);
        }
        self.signal(Signal::SIGTERM);
        match self.wait_exit(self.grace) {
            Some(s) => Some(s),
            None => self.kill(),
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}
