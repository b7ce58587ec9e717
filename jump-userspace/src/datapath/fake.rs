//! `Fake`: an in-memory datapath for tests of the daemon's reload and control logic without root.

use super::Datapath;
use crate::compile::image::MapImage;

/// An in-memory datapath: keeps the last applied image, as the kernel would.
#[derive(Default)]
pub struct Fake {
    pub active: Option<(u64, MapImage)>,
    /// Makes the next `apply` fail, as a full map or a detached program would.
    pub fail_next: bool,
    /// What `verify` reports until `restore` (a test's stand-in for a rewritten map).
    pub tampered: Vec<String>,
}

impl Datapath for Fake {
    fn apply(&mut self, image: &MapImage, generation: u64) -> anyhow::Result<()> {
        if std::mem::take(&mut self.fail_next) {
            anyhow::bail!("injected failure");
        }
        self.active = Some((generation, image.clone()));
        Ok(())
    }
}
