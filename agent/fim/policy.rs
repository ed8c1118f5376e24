//! Which paths the file-integrity manifest covers, and how each one is compared.
//!
//! A [`FimPolicy`] is a list of [`PathRule`]s: an absolute in-root glob (`/etc`,
//! `/var/log/*.log`, `/etc/ssh/ssh_host_*`) and a [`Policy`]. A rule applies to every path it
//! matches *and to everything below those paths* (a rule for `/etc` covers `/etc/passwd`).
//! When several rules apply, the most specific one wins: the rule matching the deepest
//! ancestor-or-self of the path, then the longest pattern, then the later rule. So
//! `/etc/ssh/ssh_host_*` (ignore) beats `/etc` (full) for `/etc/ssh/ssh_host_rsa_key`.
//!
//! Every rule whose policy is not `ignore` is also a walk root: its matches are walked. An
//! `ignore` rule prunes the subtree below what it matches (unless a more specific rule
//! re-includes something below it).
//!
//! In a baseline (wiring pending) the rules read as:
//!
//! ```toml
//! [[fim.path]]
//! path = "/var/log/*.log"
//! policy = "growing"
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use super::FimError;

/// How one path is compared between the manifest and the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Content (SHA-256, size, link target) and metadata (type, mode, owner, group, caps).
    Full,
    /// Type, mode, owner, group, capabilities and link target; no content, no size.
    Metadata,
    /// Append-only (logs): the size may grow; a shrink, or the same size with other content,
    /// is a change. Metadata is compared as for `full`.
    Growing,
    /// Not recorded, not compared; the subtree is not walked.
    Ignore,
}

impl Policy {
    /// The name used in baselines and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Full => "full",
            Policy::Metadata => "metadata",
            Policy::Growing => "growing",
            Policy::Ignore => "ignore",
        }
    }

    /// True when regular files under this policy are hashed.
    pub fn hashes(self) -> bool {
        matches!(self, Policy::Full | Policy::Growing)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[fim.path]]` rule: an absolute in-root glob and its policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    /// Absolute in-root glob (`*`, `?`, `[...]`, `**` as a whole component).
    pub path: String,
    /// How matches (and everything below them) are compared.
    pub policy: Policy,
}

impl PathRule {
    fn new(path: &str, policy: Policy) -> PathRule {
        PathRule {
            path: path.to_string(),
            policy,
        }
    }
}

/// The file-integrity policy: the `[[fim.path]]` rules of a baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FimPolicy {
    /// The rules, in order (order only breaks exact ties).
    #[serde(rename = "path", alias = "paths", default)]
    pub paths: Vec<PathRule>,
}

/// System directories sealed with `full` by default.
pub const DEFAULT_FULL: &[&str] = &[
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/lib64",
    "/usr/libexec",
    "/etc",
    "/boot",
];

/// Files under the default roots that legitimately change on a running instance: written by
/// systemd, cloud-init (hostname, hosts, network config, default-user sudoers), sshd key
/// generation at first boot, hwclock and ldconfig.
pub const DEFAULT_IGNORE: &[&str] = &[
    "/etc/mtab",
    "/etc/resolv.conf",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/machine-id",
    "/etc/adjtime",
    "/etc/ld.so.cache",
    "/etc/ssh/ssh_host_*",
    "/etc/netplan/50-cloud-init.yaml",
    "/etc/sudoers.d/90-cloud-init-users",
    "/etc/cloud/cloud-init.disabled",
    "/var/lib/cloud",
];

impl Default for FimPolicy {
    fn default() -> FimPolicy {
        let mut paths: Vec<PathRule> = DEFAULT_FULL
            .iter()
            .map(|p| PathRule::new(p, Policy::Full))
            .collect();
        paths.extend(
            DEFAULT_IGNORE
                .iter()
                .map(|p| PathRule::new(p, Policy::Ignore)),
        );
        FimPolicy { paths }
    }
}

impl FimPolicy {
    /// The default ignore rules with `includes` as the only walked (full) paths: what
    /// `fim init --path DIR` uses.
    pub fn with_includes<S: AsRef<str>>(includes: &[S]) -> FimPolicy {
        let mut paths: Vec<PathRule> = includes
            .iter()
            .map(|p| PathRule::new(p.as_ref(), Policy::Full))
            .collect();
        paths.extend(
            FimPolicy::default()
                .paths
                .into_iter()
                .filter(|r| r.policy == Policy::Ignore),
        );
        FimPolicy { paths }
    }

    /// Checks every rule (absolute path, valid glob) and compiles the policy for matching.
    pub fn compile(&self) -> Result<CompiledPolicy, FimError> {
        let mut rules = Vec::with_capacity(self.paths.len());
        for (index, rule) in self.paths.iter().enumerate() {
            let invalid = |reason: String| FimError::Policy {
                path: rule.path.clone(),
                reason,
            };
            if !rule.path.starts_with('/') {
                return Err(invalid("not an absolute path".into()));
            }
            let normalized = normalize(&rule.path);
            let pattern = glob::Pattern::new(&normalized).map_err(|e| invalid(e.to_string()))?;
            let literal_end = normalized.find(['*', '?', '[']).unwrap_or(normalized.len());
            let prefix = normalized[..literal_end].to_string();
            rules.push(CompiledRule {
                is_literal: literal_end == normalized.len(),
                pattern_len: normalized.len(),
                index,
                prefix,
                pattern,
                normalized,
                policy: rule.policy,
            });
        }
        Ok(CompiledPolicy { rules })
    }
}

/// Removes duplicate and trailing slashes (`/etc//ssh/` → `/etc/ssh`).
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Number of components of an absolute path (`/` is 0, `/etc` is 1).
pub(crate) fn depth(path: &[u8]) -> usize {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty()).count()
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

#[derive(Debug, Clone)]
struct CompiledRule {
    pattern: glob::Pattern,
    normalized: String,
    /// The pattern up to its first wildcard: a cheap pre-filter.
    prefix: String,
    is_literal: bool,
    pattern_len: usize,
    index: usize,
    policy: Policy,
}

/// A validated policy, ready to classify paths.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    rules: Vec<CompiledRule>,
}

/// The winning rule for a path: its specificity and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Depth of the matched ancestor-or-self (0 when only the implicit default applies).
    pub depth: usize,
    pattern_len: usize,
    index: usize,
    /// The policy of the winning rule.
    pub policy: Policy,
}

impl Verdict {
    fn key(&self) -> (usize, usize, usize) {
        (self.depth, self.pattern_len, self.index)
    }
}

impl CompiledPolicy {
    /// The in-root patterns of the rules that are walked (every policy but `ignore`).
    pub fn includes(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .filter(|r| r.policy != Policy::Ignore)
            .map(|r| r.normalized.as_str())
    }

    /// The best rule matching `path` itself (not its ancestors), if any.
    pub fn match_self(&self, path: &[u8]) -> Option<Verdict> {
        let text = String::from_utf8_lossy(path);
        let d = depth(path);
        self.rules
            .iter()
            .filter(|r| {
                if r.is_literal {
                    r.normalized == text
                } else {
                    text.starts_with(&r.prefix) && r.pattern.matches_with(&text, MATCH)
                }
            })
            .map(|r| Verdict {
                depth: d,
                pattern_len: r.pattern_len,
                index: r.index,
                policy: r.policy,
            })
            .max_by_key(Verdict::key)
    }

    /// The policy of `path`, given the verdict inherited from its parent directory.
    pub fn child(&self, parent: Option<Verdict>, path: &[u8]) -> Option<Verdict> {
        match (parent, self.match_self(path)) {
            (Some(p), Some(s)) => Some(if s.key() >= p.key() { s } else { p }),
            (p, s) => s.or(p),
        }
    }

    /// The policy of an arbitrary path: the best rule over it and all its ancestors.
    pub fn classify(&self, path: &[u8]) -> Option<Verdict> {
        let mut verdict = None;
        let mut end = 0;
        // Each ancestor prefix ("/usr", "/usr/bin", ...) and then the path itself.
        for (i, &b) in path.iter().enumerate().skip(1) {
            if b == b'/' && i > end {
                verdict = self.child(verdict, &path[..i]);
                end = i;
            }
        }
        self.child(verdict, path)
    }

    /// True when some walked rule lies strictly below `dir` (an ignored directory that
    /// must still be descended into).
    pub fn has_include_below(&self, dir: &[u8]) -> bool {
        let dir = String::from_utf8_lossy(dir);
        let dir = dir.trim_end_matches('/');
        self.rules.iter().any(|r| {
            r.policy != Policy::Ignore
                && (r.prefix.len() > dir.len() + 1
                    && r.prefix.starts_with(dir)
                    && r.prefix.as_bytes()[dir.len()] == b'/'
                    || !r.is_literal && dir.starts_with(r.prefix.trim_end_matches('/')))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_of(p: &CompiledPolicy, path: &str) -> Option<Policy> {
        p.classify(path.as_bytes()).map(|v| v.policy)
    }

    #[test]
    fn defaults_classify_system_paths() {
        let p = FimPolicy::default().compile().unwrap();
        assert_eq!(policy_of(&p, "/usr/bin/ls"), Some(Policy::Full));
        assert_eq!(policy_of(&p, "/usr/bin"), Some(Policy::Full));
        assert_eq!(policy_of(&p, "/etc/passwd"), Some(Policy::Full));
        assert_eq!(policy_of(&p, "/etc/hostname"), Some(Policy::Ignore));
        assert_eq!(
            policy_of(&p, "/etc/ssh/ssh_host_ed25519_key.pub"),
            Some(Policy::Ignore)
        );
        assert_eq!(policy_of(&p, "/etc/ssh/sshd_config"), Some(Policy::Full));
        assert_eq!(
            policy_of(&p, "/var/lib/cloud/instance/x"),
            Some(Policy::Ignore)
        );
        assert_eq!(policy_of(&p, "/home/alice"), None);
        assert_eq!(policy_of(&p, "/usr/share/doc"), None);
        assert_eq!(policy_of(&p, "/etcetera"), None);
        let includes: Vec<&str> = p.includes().collect();
        assert_eq!(includes, DEFAULT_FULL);
    }

    #[test]
    fn most_specific_rule_wins() {
        let policy = FimPolicy {
            paths: vec![
                PathRule::new("/etc/*", Policy::Metadata),
                PathRule::new("/etc", Policy::Full),
                PathRule::new("/etc/ssh/sshd_config", Policy::Full),
                PathRule::new("/var/log/*.log", Policy::Growing),
                PathRule::new("/var/log", Policy::Ignore),
            ],
        };
        let p = policy.compile().unwrap();
        assert_eq!(policy_of(&p, "/etc"), Some(Policy::Full));
        assert_eq!(policy_of(&p, "/etc/ssh"), Some(Policy::Metadata));
        assert_eq!(policy_of(&p, "/etc/ssh/moduli"), Some(Policy::Metadata));
        assert_eq!(policy_of(&p, "/etc/ssh/sshd_config"), Some(Policy::Full));
        assert_eq!(policy_of(&p, "/var/log/syslog"), Some(Policy::Ignore));
        assert_eq!(policy_of(&p, "/var/log/app.log"), Some(Policy::Growing));
        assert!(p.has_include_below(b"/var/log"));
        assert!(!p.has_include_below(b"/var/lib"));
    }

    #[test]
    fn deserializes_baseline_tables_strictly() {
        let p: FimPolicy = toml::from_str(
            "[[path]]\npath = \"/var/log/*.log\"\npolicy = \"growing\"\n[[path]]\npath = \"/opt\"\npolicy = \"metadata\"\n",
        )
        .unwrap();
        assert_eq!(p.paths[0], PathRule::new("/var/log/*.log", Policy::Growing));
        assert_eq!(p.paths[1].policy, Policy::Metadata);
        let e =
            toml::from_str::<FimPolicy>("[[path]]\npath = \"/x\"\npolicy = \"full\"\nmode = 1\n")
                .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = toml::from_str::<FimPolicy>("[[path]]\npath = \"/x\"\npolicy = \"Full\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }

    #[test]
    fn invalid_rules_are_refused() {
        for bad in ["etc", "/etc/[", ""] {
            let p = FimPolicy {
                paths: vec![PathRule::new(bad, Policy::Full)],
            };
            assert!(p.compile().is_err(), "{bad}");
        }
    }

    #[test]
    fn with_includes_keeps_default_ignores() {
        let p = FimPolicy::with_includes(&["/srv"]).compile().unwrap();
        assert_eq!(p.includes().collect::<Vec<_>>(), ["/srv"]);
        assert_eq!(policy_of(&p, "/etc/hostname"), Some(Policy::Ignore));
        assert_eq!(policy_of(&p, "/srv/x"), Some(Policy::Full));
    }
}
