//! `[[kernel_module]]`: a kernel module must not be loadable. It is disabled when the modprobe
//! configuration (read with kmod's rules: `*.conf` in /etc, /run, /usr/local/lib, /usr/lib and /lib
//! `modprobe.d`, a file name in an earlier directory hiding the same name in a later one, all applied
//! in file-name order) has `install MOD /bin/false` (or `true`; the CIS form) and/or `blacklist MOD`,
//! as `require` says. A module that no installed kernel ships (`/lib/modules/*/modules.dep`) cannot
//! be loaded either and passes; on a live system it must also not be loaded now (`/proc/modules`).
//! A live kernel without loadable-module support (no `/proc/modules`) cannot load anything: the
//! rule passes unless the feature is built into it (`/sys/module/NAME`).

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use toml::Spanned;

use crate::baseline::diag::Diagnostics;
use crate::baseline::file::rule_params;
use crate::baseline::layer::CompileCheck;
use crate::context::Context;
use crate::rule::{Check, Evidence, Outcome};
use crate::sysroot::Sysroot;

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

pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
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

/// Where a directive for a module was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: String,
    pub line: usize,
    pub text: String,
}

/// The modprobe configuration of the sysroot, parsed once per run.
#[derive(Debug, Default)]
pub struct ModprobeConfig {
    pub install_disabled: BTreeMap<String, Found>,
    pub install_other: BTreeMap<String, Found>,
    pub blacklisted: BTreeMap<String, Found>,
    pub errors: Vec<String>,
}

const MODPROBE_DIRS: &[&str] = &[
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
];

impl ModprobeConfig {
    pub fn read(sysroot: &Sysroot) -> ModprobeConfig {
        let mut cfg = ModprobeConfig::default();
        let (files, errors) = super::dropins::drop_in_files(sysroot, MODPROBE_DIRS, ".conf");
        cfg.errors = errors;
        for path in &files {
            match sysroot.read(path) {
                Ok(bytes) => cfg.parse(path, &String::from_utf8_lossy(&bytes)),
                Err(e) if e.is_not_found() => {}
                Err(e) => cfg.errors.push(e.to_string()),
            }
        }
        cfg
    }

    /// Apply one file's directives; later files override earlier ones for `install`.
    pub fn parse(&mut self, path: &str, text: &str) {
        let mut logical = String::new();
        let mut start = 0;
        for (i, raw) in text.lines().enumerate() {
            if logical.is_empty() {
                start = i + 1;
            }
            if let Some(cont) = raw.strip_suffix('\\') {
                logical.push_str(cont);
                logical.push(' ');
                continue;
            }
            logical.push_str(raw);
            let line = std::mem::take(&mut logical);
            self.directive(path, start, line.trim());
        }
        if !logical.is_empty() {
            self.directive(path, start, logical.trim());
        }
    }

    fn directive(&mut self, path: &str, line: usize, text: &str) {
        if text.starts_with('#') {
            return;
        }
        let mut words = text.split_whitespace();
        let (Some(cmd), Some(module)) = (words.next(), words.next()) else {
            return;
        };
        let module = normalize(module);
        let found = Found {
            path: path.to_string(),
            line,
            text: text.to_string(),
        };
        match cmd {
            "install" => {
                let program = words.next().unwrap_or("");
                let base = program.rsplit('/').next().unwrap_or(program);
                self.install_disabled.remove(&module);
                self.install_other.remove(&module);
                if base == "false" || base == "true" {
                    self.install_disabled.insert(module, found);
                } else {
                    self.install_other.insert(module, found);
                }
            }
            "blacklist" => {
                self.blacklisted.insert(module, found);
            }
            _ => {}
        }
    }
}

/// Modules the installed kernels ship or build in, from `modules.dep` and `modules.builtin`.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    /// Kernel versions found under `/lib/modules` that have a `modules.dep`.
    pub kernels: Vec<String>,
    pub shipped: HashSet<String>,
    pub builtin: HashSet<String>,
}

impl ModuleIndex {
    pub fn read(sysroot: &Sysroot) -> ModuleIndex {
        let mut idx = ModuleIndex::default();
        let Ok(deps) = sysroot.glob("/lib/modules/*/modules.dep") else {
            return idx;
        };
        for dep in deps {
            let Ok(bytes) = sysroot.read(&dep) else {
                continue;
            };
            if let Some(version) = dep.parent().and_then(|p| p.file_name()) {
                idx.kernels.push(version.to_string_lossy().into_owned());
            }
            for line in String::from_utf8_lossy(&bytes).lines() {
                let path = line.split(':').next().unwrap_or("");
                if let Some(name) = module_name(path) {
                    idx.shipped.insert(name);
                }
            }
            let builtin = dep.with_file_name("modules.builtin");
            if let Ok(bytes) = sysroot.read(&builtin) {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    if let Some(name) = module_name(line) {
                        idx.builtin.insert(name);
                    }
                }
            }
        }
        idx
    }
}

/// `kernel/fs/cramfs/cramfs.ko.xz` → `cramfs`.
fn module_name(path: &str) -> Option<String> {
    let file = path.trim().rsplit('/').next()?;
    let stem = file.split(".ko").next()?;
    (!stem.is_empty() && file.contains(".ko")).then(|| normalize(stem))
}

/// Modules loaded now (`/proc/modules`), when the sysroot is live.
#[derive(Debug)]
pub struct LoadedModules(pub Result<HashSet<String>, String>);

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
            let loaded = cx.cache.get(|| {
                LoadedModules(match cx.sysroot.read("/proc/modules") {
                    Ok(b) => Ok(String::from_utf8_lossy(&b)
                        .lines()
                        .filter_map(|l| l.split_whitespace().next())
                        .map(normalize)
                        .collect()),
                    Err(e) => Err(e.to_string()),
                })
            });
            match &loaded.0 {
                Ok(set) if set.contains(&self.name) => {
                    return Outcome::fail(
                        Evidence::new(format!("module {} is loaded now", self.display))
                            .path("/proc/modules")
                            .expected("not loaded"),
                    )
                }
                Ok(_) => {}
                Err(e) if cx.sysroot.exists("/proc/modules") => return Outcome::error(e),
                Err(_) => no_module_support = true,
            }
        }
        if missing.is_empty() {
            return Outcome::Pass { evidence };
        }
        if no_module_support {
            // CONFIG_MODULES=n: nothing can be loaded; only what is built in is active.
            if cx.sysroot.exists(format!("/sys/module/{}", self.name)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_false_and_blacklist_are_recognised() {
        let mut cfg = ModprobeConfig::default();
        cfg.parse("/etc/modprobe.d/cis.conf", "# x\ninstall cramfs /bin/false\nblacklist cramfs\ninstall usb-storage \\\n  /usr/bin/true\ninstall sctp /sbin/modprobe --ignore-install sctp\n");
        assert_eq!(cfg.install_disabled["cramfs"].line, 2);
        assert!(cfg.blacklisted.contains_key("cramfs"));
        assert_eq!(cfg.install_disabled["usb_storage"].line, 4);
        assert!(!cfg.install_disabled.contains_key("sctp"));
        assert!(cfg.install_other.contains_key("sctp"));
        // a later file re-enabling the module wins
        cfg.parse(
            "/etc/modprobe.d/z.conf",
            "install cramfs /sbin/modprobe --ignore-install cramfs\n",
        );
        assert!(!cfg.install_disabled.contains_key("cramfs"));
    }

    #[test]
    fn module_names_from_dep_paths() {
        assert_eq!(
            module_name("kernel/fs/cramfs/cramfs.ko.xz"),
            Some("cramfs".into())
        );
        assert_eq!(
            module_name("kernel/drivers/usb/storage/usb-storage.ko"),
            Some("usb_storage".into())
        );
        assert_eq!(module_name("modules.order"), None);
    }
}
