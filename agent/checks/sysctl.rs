//! `[[sysctl]]`: a live kernel parameter, read from the sysroot's `/proc/sys` (so `--root` of a
//! chroot with `/proc` mounted, or a fixture tree, works too). An offline image has no live kernel:
//! the rule is not applicable there, never a pass. What an image *will* apply at boot is the
//! persisted configuration (`/etc/sysctl.d` ...), judged by `[[config]]` rules.

use toml::Spanned;

use super::expect::{Expect, ExpectSpec};
use crate::baseline::diag::Diagnostics;
use crate::baseline::file::rule_params;
use crate::baseline::layer::CompileCheck;
use crate::context::Context;
use crate::rule::{Check, Evidence, Outcome};

rule_params! {
    /// TOML parameters of `[[sysctl]]`.
    pub struct Sysctl {
        /// The parameter, dotted (`net.ipv4.ip_forward`) or slashed (`net/ipv4/ip_forward`).
        pub key: Spanned<String>,
        pub expect: Spanned<ExpectSpec>,
    }
}

#[derive(Debug)]
pub struct SysctlCheck {
    key: String,
    proc_path: String,
    expect: Expect,
}

/// `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`. With a `/` in the key, dots are kept
/// (sysctl(8)'s rule, for interface names like `eth0.100`).
pub fn proc_path(key: &str) -> String {
    if key.contains('/') {
        format!("/proc/sys/{}", key.trim_start_matches('/'))
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

impl CompileCheck for Sysctl {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let key = self.key.get_ref();
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
            && !key.split(['.', '/']).any(|c| c.is_empty() || c == "..");
        if !valid {
            diags.error(
                self.key.span(),
                format!("`key` `{key}` is not a sysctl name like net.ipv4.ip_forward"),
            );
        }
        let expect = Expect::compile(&self.expect, false, diags);
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(SysctlCheck {
            key: key.clone(),
            proc_path: proc_path(key),
            expect: expect?,
        }))
    }
}

impl Check for SysctlCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        if !cx.is_live() {
            return Outcome::not_applicable(Context::OFFLINE_IMAGE);
        }
        let value = match cx.sysroot.read(&self.proc_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.is_not_found() => {
                return Outcome::not_applicable(format!(
                    "the running kernel has no {} ({} does not exist)",
                    self.key, self.proc_path
                ))
            }
            Err(e) => return Outcome::error(e),
        };
        let evidence = Evidence::new(format!("{} (live)", self.key))
            .path(self.proc_path.clone())
            .found(super::expect::normalize(&value));
        match self.expect.check(&value) {
            Ok(()) => Outcome::pass(evidence),
            Err(want) => Outcome::fail(evidence.expected(want)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_paths() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            proc_path("net/ipv4/conf/eth0.100/rp_filter"),
            "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
        );
    }
}
