//! What a check sees while it runs: the sysroot to read, the stage, the host facts gathered once
//! before any check, whether network probes are allowed, and a per-run cache so that files many
//! rules need (`/etc/passwd`, the modprobe configuration, ...) are parsed once even though checks run
//! in parallel. Shared read-only by all checks.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::fim::FimSettings;
use crate::host::probe::ProbeSettings;
use crate::host::HostFacts;
use crate::rule::{Settings, Stage};
use crate::sysroot::Sysroot;

#[derive(Debug)]
pub struct Context<'a> {
    pub sysroot: &'a Sysroot,
    pub stage: Stage,
    pub facts: &'a HostFacts,
    /// `--offline`: no network probes (IMDS, SSM, package metadata refresh).
    pub offline: bool,
    pub cache: Cache,
    /// How the `fim` family seals and verifies (policy, manifest, pinned digest).
    pub fim: FimSettings,
    /// Active probes (`--active-probes`) and the IMDS endpoint they and the firewall rules use.
    pub probes: ProbeSettings,
    /// Whether an unset key counts with its built-in default (EC2 profile) or must be written down
    /// (CIS profiles, as the benchmark's audit procedure reads the files).
    pub settings: Settings,
}

impl<'a> Context<'a> {
    /// The reason live-only checks give when the sysroot has no `/proc` (an image, not a host).
    pub const OFFLINE_IMAGE: &'static str =
        "offline image: the sysroot has no /proc/sys, so live kernel state cannot be read";

    pub fn new(sysroot: &'a Sysroot, stage: Stage, facts: &'a HostFacts, offline: bool) -> Self {
        Context {
            sysroot,
            stage,
            facts,
            offline,
            cache: Cache::default(),
            fim: FimSettings::default(),
            probes: ProbeSettings::default(),
            settings: Settings::Effective,
        }
    }

    /// True when the sysroot exposes live kernel state (`/proc/sys`): the host itself, a chroot with
    /// `/proc` mounted, or a fixture tree that carries one.
    pub fn is_live(&self) -> bool {
        self.facts.live
    }
}

type Slot = Arc<OnceLock<Arc<dyn Any + Send + Sync>>>;

/// A run-wide memo keyed by type: `cx.cache.get(|| parse(...))` computes a value once; concurrent
/// callers for the same type wait for the first instead of computing it again.
///
/// Checks run as tasks on the global rayon pool, so an `init` must not wait for work it puts on
/// that pool: while waiting, rayon may run another check on the same thread, and if that check
/// asks for the same value it blocks on the cell this thread is filling. Do parallel work in an
/// `init` on threads of its own (`crate::host::walk`) or a separate pool (`crate::fim::isolated`).
#[derive(Default)]
pub struct Cache {
    slots: Mutex<HashMap<TypeId, Slot>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

impl Cache {
    pub fn get<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.entry(TypeId::of::<T>()).or_default().clone()
        };
        let value = slot.get_or_init(|| Arc::new(init())).clone();
        // The slot for TypeId::of::<T>() only ever holds a T.
        value
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("cache slot holds the type it is keyed by"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_computes_once_per_type() {
        let cache = Cache::default();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        #[derive(Debug, PartialEq)]
        struct A(u32);
        #[derive(Debug, PartialEq)]
        struct B(&'static str);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let a = cache.get(|| {
                        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        A(7)
                    });
                    assert_eq!(*a, A(7));
                });
            }
        });
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(*cache.get(|| B("b")), B("b"));
    }
}
