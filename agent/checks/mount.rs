//! `[[mount]]`: a directory must be its own mount, with the given options (`nodev`, `nosuid`,
//! `noexec` for `/tmp`, `/dev/shm`, `/var/tmp`, `/home`). On a live system the truth is the kernel's
//! mount table (`/proc/self/mountinfo`: the last mount on a path is the visible one; per-mount flags
//! in field 6, filesystem options after the ` - `). On an image it is what boot will mount: an
//! `/etc/fstab` entry, else a systemd `.mount` unit for the path (`tmp.mount` → `Options=`) that is
//! enabled, else `default_options` for mounts the system always makes (systemd mounts `/dev/shm`
//! `nosuid,nodev`). `options = []` with `missing = "fail"` states "must be a separate mount".

use toml::Spanned;

use super::IfMissing;
use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::mounts::{at_boot, Found, MountTable};
use crate::host::systemd::UnitIndex;
use crate::rule::{Evidence, Outcome};

rule_params! {
    /// TOML parameters of `[[mount]]`.
    pub struct Mount {
        /// The mount point, e.g. `/tmp`.
        pub path: Spanned<String>,
        /// Options that must all be in effect.
        #[serde(default)]
        pub options: Vec<String>,
        /// Options in effect when the system mounts the path by itself without configuration.
        #[serde(default)]
        pub default_options: Option<Vec<String>>,
        /// When the path is not a separate mount: `not-applicable` (default), `fail`, `pass`.
        #[serde(default)]
        pub missing: IfMissing,
    }
}

#[derive(Debug)]
pub struct MountCheck {
    path: String,
    options: Vec<String>,
    default_options: Option<Vec<String>>,
    missing: IfMissing,
}

impl CompileCheck for Mount {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let p = self.path.get_ref();
        if !p.starts_with('/')
            || p.split('/').any(|c| c == ".." || c == ".")
            || (p.len() > 1 && p.ends_with('/'))
        {
            diags.error(
                self.path.span(),
                format!("`path` `{p}` must be an absolute, normalised mount point"),
            );
            return None;
        }
        if self
            .options
            .iter()
            .any(|o| o.is_empty() || o.contains([',', ' ']))
        {
            diags.error(
                self.path.span(),
                "`options` must be single mount options like \"nodev\"",
            );
            return None;
        }
        Some(Box::new(MountCheck {
            path: p.clone(),
            options: self.options.clone(),
            default_options: self.default_options.clone(),
            missing: self.missing,
        }))
    }
}

impl MountCheck {
    fn evaluate_found(&self, found: Option<Found>) -> Outcome {
        let Some(found) = found else {
            return self
                .missing
                .outcome(format!("{} is not a separate mount", self.path));
        };
        let lacking: Vec<&String> = self
            .options
            .iter()
            .filter(|o| !found.options.contains(o))
            .collect();
        let ev = found.source.found(found.options.join(","));
        if lacking.is_empty() {
            Outcome::pass(ev)
        } else {
            let lacking: Vec<&str> = lacking.iter().map(|s| s.as_str()).collect();
            Outcome::fail(ev.expected(format!("options including {}", lacking.join(","))))
        }
    }
}

impl Check for MountCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        if cx.is_live() {
            match MountTable::read(cx.sysroot) {
                Ok(Some(table)) => return self.evaluate_found(table.find(&self.path)),
                Ok(None) => {} // a fixture or chroot without mounts: judge the configuration
                Err(e) => return Outcome::error(e),
            }
        }
        let units = cx.cache.get(|| UnitIndex::read(cx.sysroot));
        match at_boot(cx.sysroot, &units, &self.path) {
            Ok(Some(found)) => return self.evaluate_found(Some(found)),
            Ok(None) => {}
            Err(e) => return Outcome::error(e),
        }
        match &self.default_options {
            Some(opts) => self.evaluate_found(Some(Found {
                source: Evidence::new(format!(
                    "{} is mounted by the system itself with its defaults",
                    self.path
                )),
                options: opts.clone(),
            })),
            None => self.evaluate_found(None),
        }
    }
}
