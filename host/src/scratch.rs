//! Test support: a scratch directory of its own per test, removed when
//! dropped.

use std::path::PathBuf;

pub struct Scratch(pub PathBuf);

impl Scratch {
    /// `<tmp>/helio-<name>-<pid>`, emptied first.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("helio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
