//! Compiled components kept on disk, so a start does not pay Cranelift
//! again for a component this Helio has compiled before (measured: ~0.45 s
//! of a 0.46 s start with the built-in stages; loading an artefact takes
//! about a millisecond).
//!
//! An artefact is native code that wasmtime maps and runs without checking
//! it, so only artefacts this user's Helio wrote are ever loaded:
//!
//! - the directory is `HELIO_CACHE_DIR`, else `$XDG_CACHE_HOME/helio/components`,
//!   else `$HOME/.cache/helio/components`; created `0700`, and used only when
//!   it is a real directory (not a link) owned by this user that no one else
//!   can write;
//! - an artefact is named by the SHA-256 of the component's bytes and a hash
//!   of the engine's compatibility (wasmtime version, configuration, CPU
//!   features), written `0600` to a temporary name and renamed into place, and
//!   loaded only when it is a regular file owned by this user that no one
//!   else can write;
//! - wasmtime checks the artefact's header against the engine before using
//!   it; any failure falls back to compiling (and rewrites the artefact).
//!
//! Artefacts of other engines (an older Helio or wasmtime) unused for a
//! week, and temporary files a crash left behind, are removed when the
//! cache opens, so upgrades do not pile up (two versions running side by
//! side keep each other's artefacts).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::Engine;

/// Another engine's artefact unused this long is removed.
const STALE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// A temporary file this old was left by a crash.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

pub struct DiskCache {
    dir: PathBuf,
    /// This engine's compatibility, as part of every artefact's name.
    engine_tag: String,
    uid: u32,
}

impl DiskCache {
    /// The cache for `engine`, if a safe directory for it can be had.
    pub fn open(engine: &Engine) -> Option<Self> {
        let dir = cache_dir()?;
        let uid = std::fs::metadata("/proc/self").ok()?.uid();
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .ok()?;
        }
        let meta = std::fs::symlink_metadata(&dir).ok()?;
        if !meta.is_dir() || !private(&meta, uid) {
            tracing::warn!(dir = %dir.display(), "not caching compiled policy stages: the cache directory is not a directory of this user's that only it can write");
            return None;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache = Self {
            dir,
            engine_tag: format!("{:016x}", hasher.finish()),
            uid,
        };
        cache.remove_stale();
        Some(cache)
    }

    /// Removes artefacts of other engines not used for [`STALE_AFTER`] and
    /// temporary files older than [`ABANDONED_AFTER`].
    fn remove_stale(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let current = format!("-{}.cwasm", self.engine_tag);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let keep_for = if name.ends_with(&current) {
                continue;
            } else if name.ends_with(".cwasm") {
                STALE_AFTER
            } else if name.contains(".tmp") {
                ABANDONED_AFTER
            } else {
                continue;
            };
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok());
            if age.is_some_and(|age| age >= keep_for) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn path(&self, key: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", hex::encode(key), self.engine_tag))
    }

    /// The artefact for the component whose bytes hash to `key`, if this
    /// user's Helio wrote one for this engine.
    pub fn load(&self, engine: &Engine, key: &[u8; 32]) -> Option<Component> {
        let path = self.path(key);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || !private(&meta, self.uid) {
            return None;
        }
        // SAFETY: `deserialize_file` runs the file's native code unchecked.
        // The file is a regular file owned by this user, in a directory owned
        // by this user, neither writable by anyone else (checked above), named
        // by the SHA-256 of the component it was compiled from and this
        // engine's compatibility hash: it is an artefact Helio itself wrote
        // with `Component::serialize` for exactly these bytes and this engine.
        // wasmtime also checks its header against the engine and refuses a
        // mismatch, which then falls back to compiling.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::debug!(%error, path = %path.display(), "ignoring a cached artefact");
                None
            }
        }
    }

    /// Keeps `component`'s artefact for the next start. Best effort: a
    /// failure only costs a compile next time.
    pub fn store(&self, key: &[u8; 32], component: &Component) {
        let Ok(bytes) = component.serialize() else {
            return;
        };
        let path = self.path(key);
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| file.write_all(&bytes))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            tracing::debug!(%error, path = %path.display(), "could not cache a compiled policy stage");
        }
    }
}

fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HELIO_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("helio").join("components"))
}

/// Owned by `uid`, and neither group nor others may write it.
fn private(meta: &std::fs::Metadata, uid: u32) -> bool {
    meta.uid() == uid && meta.mode() & 0o022 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artefacts_round_trip_and_foreign_ones_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("helio-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).expect("engine");
        let uid = std::fs::metadata("/proc/self").expect("self").uid();
        let cache = DiskCache {
            dir: dir.clone(),
            engine_tag: "test".into(),
            uid,
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .expect("dir");
        let component = Component::new(&engine, super::super::builtin::RULES).expect("compile");
        let key = [7u8; 32];
        assert!(cache.load(&engine, &key).is_none(), "nothing cached yet");
        cache.store(&key, &component);
        let path = cache.path(&key);
        assert_eq!(
            std::fs::metadata(&path)
                .expect("written")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(cache.load(&engine, &key).is_some(), "loaded back");
        // Writable by others: never loaded.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(cache.load(&engine, &key).is_none());
        // Not an artefact: refused by wasmtime, so compiled again.
        std::fs::write(&path, b"not an artefact").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(cache.load(&engine, &key).is_none());
        // Another engine's artefact unused for a week and a crash's old
        // temporary file go; a fresh one of another engine (a second Helio
        // version on the host) and this engine's stay.
        cache.store(&key, &component);
        let old = std::time::SystemTime::now() - STALE_AFTER - Duration::from_secs(60);
        let aged = |name: &str| {
            let path = dir.join(name);
            let file = std::fs::File::create(&path).expect("create");
            file.set_modified(old).expect("mtime");
            path
        };
        let stale = aged("aa-0123456789abcdef.cwasm");
        let temporary = aged("bb-test.tmp42");
        let neighbour = dir.join("cc-fedcba9876543210.cwasm");
        std::fs::write(&neighbour, b"another version's").expect("write");
        cache.remove_stale();
        assert!(!stale.exists() && !temporary.exists());
        assert!(neighbour.exists() && path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
