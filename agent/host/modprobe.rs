//! Kernel modules as the sysroot configures and ships them: the modprobe configuration read with
//! kmod's rules (`*.conf` in `/etc`, `/run`, `/usr/local/lib`, `/usr/lib` and `/lib` `modprobe.d`, a
//! file name in an earlier directory hiding the same name in a later one, all applied in file-name
//! order), the modules each installed kernel ships or builds in (`/lib/modules/*/modules.dep`,
//! `modules.builtin`), and on a live host the modules loaded now (`/proc/modules`).

use std::collections::{BTreeMap, HashSet};

use crate::sysroot::Sysroot;

/// Module names compare with `-` and `_` equivalent, as modprobe does.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
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
        let (files, errors) = crate::host::dropins::drop_in_files(sysroot, MODPROBE_DIRS, ".conf");
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
pub enum LoadedModules {
    /// The names of the loaded modules, normalised.
    Loaded(HashSet<String>),
    /// No `/proc/modules`: the running kernel cannot load modules (`CONFIG_MODULES=n`).
    NoModuleSupport,
    /// `/proc/modules` exists and could not be read.
    Unreadable(String),
}

impl LoadedModules {
    pub fn read(sysroot: &Sysroot) -> LoadedModules {
        match sysroot.read("/proc/modules") {
            Ok(b) => LoadedModules::Loaded(
                String::from_utf8_lossy(&b)
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .map(normalize)
                    .collect(),
            ),
            Err(_) if !sysroot.exists("/proc/modules") => LoadedModules::NoModuleSupport,
            Err(e) => LoadedModules::Unreadable(e.to_string()),
        }
    }
}

/// True when the running kernel has `name` active (`/sys/module/NAME`): loaded or built in.
pub fn active_in_kernel(sysroot: &Sysroot, name: &str) -> bool {
    sysroot.exists(format!("/sys/module/{}", normalize(name)))
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
