//! `[[kernel_module]]`: a kernel module must not be loadable. It is disabled when the modprobe
//! configuration (read with kmod's rules: `*.conf` in /etc, /run, /usr/local/lib, /usr/lib and /lib
//! `modprobe.d`, a file name in an earlier directory hiding the same name in a later one, all applied
//! in file-name order) has `install MOD /bin/false` (or `true`; the CIS form) and/or `blacklist MOD`,
//! as `require` says. A module that no installed kernel ships (`/lib/modules/*/modules.dep`) cannot
//! be loaded either and passes; on a live system it must also not be loaded now (`/proc/modules`).
//! A live kernel without loadable-module support (no `/proc/modules`) cannot load anything: the
//! rule passes unless the feature is built into it (`/sys/module/NAME`).

use serde::Deserialize;
use toml::Spanned;

use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::modprobe::{
    active_in_kernel, normalize, LoadedModules, ModprobeConfig, ModuleIndex,
};
use crate::rule::{Evidence, Outcome};

/// How a module may be disabled in modprobe.d.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Directive {
    /// `install MOD /bin/false` (or `/bin/true`, any path to `false`/`true`): loading is refused.
    Install,
    /// `blacklist MOD`: not auto-loaded by alias (an explicit `modprobe MOD` still loads it).
    Blacklist,
}

rule_params! {
    /// TOML parameters of `[[kernel_module]]`.
    pub struct KernelModule {
        /// Module name; `-` and `_` are equivalent, as for modprobe.
        pub name: Spanned<String>,
        /// Directives that must all be present (default `["install"]`).
        #[serde(default = "default_require")]
        pub require: Vec<Directive>,
    }
}

fn default_require() -> Vec<Directive> {
    vec![Directive::Install]
}

#[derive(Debug)]
pub struct KernelModuleCheck {
    /// Normalised (`_`), for lookups.
    name: String,
    /// As the baseline wrote it, for messages and remediation.
    display: String,
    require: Vec<Directive>,
}

impl CompileCheck for KernelModule {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let name = self.name.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            diags.error(
                self.name.span(),
                format!("`name` `{name}` is not a kernel module name"),
            );
            return None;
        }
        if self.require.is_empty() {
            diags.error(
                self.name.span(),
                "`require` must list install and/or blacklist",
            );
            return None;
        }
        Some(Box::new(KernelModuleCheck {
            name: normalize(name),
            display: name.clone(),
            require: self.require.clone(),
        }))
    }
}

impl Check for KernelModuleCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let cfg = cx.cache.get(|| ModprobeConfig::read(cx.sysroot));
        if !cfg.errors.is_empty() {
            return Outcome::error(format!(
                "cannot read the modprobe configuration: {}",
                cfg.errors.join("; ")
            ));
        }
        let mut evidence = Vec::new();
        let mut missing = Vec::new();
        for d in &self.require {
            let (table, label) = match d {
                Directive::Install => (&cfg.install_disabled, "install"),
                Directive::Blacklist => (&cfg.blacklisted, "blacklist"),
            };
            match table.get(&self.name) {
                Some(f) => evidence.push(
                    Evidence::new(format!("`{}`", f.text))
                        .path(f.path.clone())
                        .line(f.line),
                ),
                None => missing.push(label),
            }
        }
        let mut no_module_support = false;
        if cx.is_live() {
            let loaded = cx.cache.get(|| LoadedModules::read(cx.sysroot));
            match &*loaded {
                LoadedModules::Loaded(set) if set.contains(&self.name) => {
                    return Outcome::fail(
                        Evidence::new(format!("module {} is loaded now", self.display))
                            .path("/proc/modules")
                            .expected("not loaded"),
                    )
                }
                LoadedModules::Loaded(_) => {}
                LoadedModules::Unreadable(e) => return Outcome::error(e),
                LoadedModules::NoModuleSupport => no_module_support = true,
            }
        }
        if missing.is_empty() {
            return Outcome::Pass { evidence };
        }
        if no_module_support {
            // CONFIG_MODULES=n: nothing can be loaded; only what is built in is active.
            if active_in_kernel(cx.sysroot, &self.name) {
                return Outcome::fail(
                    Evidence::new(format!(
                        "{} is built into the running kernel, which cannot load or unload modules",
                        self.display
                    ))
                    .path(format!("/sys/module/{}", self.name)),
                );
            }
            return Outcome::pass(Evidence::new(format!(
                "the running kernel has no loadable module support (no /proc/modules) and {} is not built in",
                self.display
            )));
        }
        let index = cx.cache.get(|| ModuleIndex::read(cx.sysroot));
        if index.builtin.contains(&self.name) {
            return Outcome::fail(Evidence::new(format!(
                "module {} is built into the kernel; modprobe.d cannot disable it",
                self.display
            )));
        }
        if !index.kernels.is_empty() && !index.shipped.contains(&self.name) {
            return Outcome::pass(Evidence::new(format!(
                "module {} is not shipped by any installed kernel ({})",
                self.display,
                index.kernels.join(", ")
            )));
        }
        let mut fail = Evidence::new(format!(
            "module {} is not disabled in modprobe.d",
            self.name
        ))
        .expected(
            missing
                .iter()
                .map(|m| match *m {
                    "install" => format!("install {} /bin/false", self.display),
                    _ => format!("blacklist {}", self.display),
                })
                .collect::<Vec<_>>()
                .join(" and "),
        );
        if let Some(other) = cfg.install_other.get(&self.name) {
            fail = fail.found(format!("{} at {}:{}", other.text, other.path, other.line));
        }
        Outcome::fail(fail)
    }
}
