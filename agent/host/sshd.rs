//! The SSH daemon's effective global configuration, computed the way sshd computes it:
//! `/etc/ssh/sshd_config` is read top to bottom; `Include` (globs, paths relative to `/etc/ssh`,
//! several per line) splices files in lexical order at its position; the first value obtained for a
//! keyword wins; keywords are case-insensitive and may be written `Keyword=value`; arguments may be
//! double-quoted. `Match` blocks are conditional, so nothing inside one (nor an `Include` inside one,
//! nor anything after a `Match` in an included file) sets the global value — sshd restores the
//! unconditional state when an included file ends. Include loops and nesting deeper than sshd's own
//! limit are errors with the file and line.
//!
//! One keyword overrides others: `DisableForwarding yes` turns off X11, agent, TCP and StreamLocal
//! forwarding whatever their own keywords say ([`SshdConfig::forwarding_disabled`]).

use std::collections::HashMap;

use crate::sysroot::Sysroot;

/// sshd's own main configuration file.
pub const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";

/// sshd refuses Include nesting deeper than this (`SERVCONF_MAX_DEPTH` in OpenSSH).
const MAX_DEPTH: usize = 16;
/// The most files one configuration may splice in, counting a file each time it is included:
/// includes that fan out (each file including the next several times) would otherwise take
/// exponential time. Real configurations include a handful.
pub const MAX_INCLUDED_FILES: usize = 1024;
/// The largest configuration file read (a real sshd_config is a few KiB).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The keywords (lowercase) whose forwarding `DisableForwarding yes` turns off: sshd_config(5)
/// says it disables X11, ssh-agent, TCP and StreamLocal forwarding and overrides every other
/// forwarding option.
pub const DISABLED_BY_DISABLE_FORWARDING: &[&str] = &[
    "x11forwarding",
    "allowagentforwarding",
    "allowtcpforwarding",
    "allowstreamlocalforwarding",
];

/// Where a global value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub path: String,
    pub line: usize,
}

/// The effective global settings: lowercase keyword → first value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SshdConfig {
    pub settings: HashMap<String, Setting>,
    /// Every global `HostKey` line, in order (sshd loads each).
    pub host_keys: Vec<Setting>,
    /// Every file read, in order (for evidence and debugging).
    pub files: Vec<String>,
}

/// Why the configuration could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshdError {
    #[error("{0} does not exist: sshd is not installed or not configured here")]
    Missing(String),
    #[error("{0}")]
    Read(String),
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
}

impl SshdConfig {
    /// Compute the effective global configuration of the sysroot's sshd.
    pub fn read(sysroot: &Sysroot) -> Result<SshdConfig, SshdError> {
        let mut cfg = SshdConfig::default();
        match sysroot.read(SSHD_CONFIG) {
            Err(e) if e.is_not_found() && sysroot.symlink_metadata(SSHD_CONFIG).is_ok() => {
                return Err(SshdError::Read(format!(
                    "{SSHD_CONFIG} is a dangling symlink"
                )))
            }
            Err(e) if e.is_not_found() => return Err(SshdError::Missing(SSHD_CONFIG.into())),
            Err(e) => return Err(SshdError::Read(e.to_string())),
            Ok(_) => {}
        }
        let mut walk = Walk::default();
        cfg.parse_file(sysroot, SSHD_CONFIG, true, None, &mut walk)?;
        Ok(cfg)
    }

    /// The global `DisableForwarding yes` that turns off the forwarding `keyword` (any case)
    /// controls, whatever `keyword` itself is set to; `None` when `keyword` is not a forwarding
    /// option it overrides or DisableForwarding is not `yes` (sshd compares flags ignoring case).
    pub fn forwarding_disabled(&self, keyword: &str) -> Option<&Setting> {
        let keyword = keyword.to_ascii_lowercase();
        if !DISABLED_BY_DISABLE_FORWARDING.contains(&keyword.as_str()) {
            return None;
        }
        self.settings
            .get("disableforwarding")
            .filter(|s| s.value.eq_ignore_ascii_case("yes"))
    }

    /// Parse one file. `active` is false inside a `Match` block of the including file; `from`
    /// is the `Include` line (file, line) that splices it in.
    fn parse_file(
        &mut self,
        sysroot: &Sysroot,
        path: &str,
        active: bool,
        from: Option<(&str, usize)>,
        walk: &mut Walk,
    ) -> Result<(), SshdError> {
        let at_include = |message: String| {
            let (file, line) = from.unwrap_or((path, 0));
            SshdError::Syntax {
                path: file.to_string(),
                line,
                message,
            }
        };
        if walk.stack.iter().any(|p| p == path) {
            return Err(at_include(format!(
                "Include loop: {} -> {path}",
                walk.stack.join(" -> ")
            )));
        }
        if walk.stack.len() >= MAX_DEPTH {
            return Err(at_include(format!(
                "Include nested more than {MAX_DEPTH} deep"
            )));
        }
        walk.included += 1;
        if walk.included > MAX_INCLUDED_FILES {
            return Err(at_include(format!(
                "Include expands to more than {MAX_INCLUDED_FILES} files in all (includes that fan out); not evaluated further"
            )));
        }
        let text = match walk.texts.get(path) {
            Some(text) => std::sync::Arc::clone(text),
            None => {
                let bytes = sysroot
                    .read_limited(path, MAX_FILE_BYTES)
                    .map_err(|e| SshdError::Read(e.to_string()))?;
                let text: std::sync::Arc<str> = std::str::from_utf8(&bytes)
                    .map_err(|e| SshdError::Syntax {
                        path: path.into(),
                        line: line_of(&bytes, e.valid_up_to()),
                        message: "not a text file (invalid UTF-8)".into(),
                    })?
                    .into();
                walk.texts
                    .insert(path.to_string(), std::sync::Arc::clone(&text));
                text
            }
        };
        if !self.files.iter().any(|f| f == path) {
            self.files.push(path.to_string());
        }
        walk.stack.push(path.to_string());
        let mut active = active;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let syntax = |message: String| SshdError::Syntax {
                path: path.into(),
                line,
                message,
            };
            let Some((keyword, args)) = split_line(raw).map_err(syntax)? else {
                continue;
            };
            let lower = keyword.to_ascii_lowercase();
            match lower.as_str() {
                "match" => active = false,
                "include" => {
                    if args.is_empty() {
                        return Err(syntax("Include needs at least one path".into()));
                    }
                    for pattern in &args {
                        let pattern = if pattern.starts_with('/') {
                            pattern.clone()
                        } else {
                            format!("/etc/ssh/{pattern}")
                        };
                        let files = sysroot.glob(&pattern).map_err(|e| syntax(e.to_string()))?;
                        for file in files {
                            let file = file.display().to_string();
                            self.parse_file(sysroot, &file, active, Some((path, line)), walk)?;
                        }
                    }
                }
                _ if active => {
                    let value = args.join(" ");
                    if lower == "hostkey" {
                        self.host_keys.push(Setting {
                            value: value.clone(),
                            path: path.to_string(),
                            line,
                        });
                    }
                    self.settings.entry(lower).or_insert(Setting {
                        value,
                        path: path.to_string(),
                        line,
                    });
                }
                _ => {}
            }
        }
        walk.stack.pop();
        Ok(())
    }
}

/// The state of one configuration's include expansion: the files being read (for loops and
/// depth), how many files were spliced in so far, and each file's text, read once.
#[derive(Default)]
struct Walk {
    stack: Vec<String>,
    included: usize,
    texts: HashMap<String, std::sync::Arc<str>>,
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Split an sshd_config line into keyword and arguments (sshd's rules: `#` comments at the start,
/// `Keyword=value` or `Keyword value`, double quotes group an argument). `Ok(None)` for blank and
/// comment lines.
pub fn split_line(raw: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = &line[..end];
    if keyword.is_empty() {
        return Err(format!("line starts with `=`: {line}"));
    }
    let mut rest = line[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break; // a trailing comment
        }
        let mut arg = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == '"' {
                    closed = true;
                    break;
                }
                arg.push(c);
            }
            if !closed {
                return Err(format!("unterminated quote in: {line}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                arg.push(c);
                chars.next();
            }
        }
        args.push(arg);
    }
    Ok(Some((keyword.to_string(), args)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Sysroot) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let root = Sysroot::open(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn lines_split_like_sshd() {
        assert_eq!(split_line("  # c").unwrap(), None);
        assert_eq!(
            split_line("PermitRootLogin=no").unwrap(),
            Some(("PermitRootLogin".into(), vec!["no".into()]))
        );
        assert_eq!(
            split_line("Banner \"/etc/my banner\" # note").unwrap(),
            Some(("Banner".into(), vec!["/etc/my banner".into()]))
        );
        assert_eq!(
            split_line("Ciphers   aes256-gcm@openssh.com,aes128-ctr").unwrap(),
            Some((
                "Ciphers".into(),
                vec!["aes256-gcm@openssh.com,aes128-ctr".into()]
            ))
        );
        assert!(split_line("Banner \"unterminated").is_err());
    }

    #[test]
    fn include_is_spliced_at_its_position_and_first_value_wins() {
        let (_d, root) = tree(&[
            ("/etc/ssh/sshd_config", "PasswordAuthentication yes\nInclude /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n"),
            ("/etc/ssh/sshd_config.d/50-cloud.conf", "permitrootlogin yes\nPasswordAuthentication no\n"),
            ("/etc/ssh/sshd_config.d/10-a.conf", "X11Forwarding no\n"),
        ]);
        let cfg = SshdConfig::read(&root).unwrap();
        // the drop-in comes before the main file's later line, so its value wins
        assert_eq!(cfg.settings["permitrootlogin"].value, "yes");
        assert_eq!(
            cfg.settings["permitrootlogin"].path,
            "/etc/ssh/sshd_config.d/50-cloud.conf"
        );
        // the main file's earlier line wins over the drop-in
        assert_eq!(cfg.settings["passwordauthentication"].value, "yes");
        assert_eq!(
            cfg.files,
            vec![
                "/etc/ssh/sshd_config",
                "/etc/ssh/sshd_config.d/10-a.conf",
                "/etc/ssh/sshd_config.d/50-cloud.conf"
            ]
        );
    }

    #[test]
    fn match_blocks_and_conditional_includes_do_not_count() {
        let (_d, root) = tree(&[
            (
                "/etc/ssh/sshd_config",
                "Include local.conf\nMatch User backup\n  PermitRootLogin yes\n  Include /etc/ssh/cond.conf\n",
            ),
            ("/etc/ssh/local.conf", "MaxAuthTries 3\nMatch Address 10.0.0.0/8\n  PasswordAuthentication yes\n"),
            ("/etc/ssh/cond.conf", "X11Forwarding yes\n"),
        ]);
        let cfg = SshdConfig::read(&root).unwrap();
        assert_eq!(cfg.settings["maxauthtries"].value, "3");
        assert!(!cfg.settings.contains_key("permitrootlogin"));
        assert!(
            !cfg.settings.contains_key("passwordauthentication"),
            "a Match in an included file ends with that file, and is conditional"
        );
        assert!(!cfg.settings.contains_key("x11forwarding"));
    }

    #[test]
    fn disable_forwarding_yes_overrides_the_forwarding_keywords() {
        let (_d, root) = tree(&[
            (
                "/etc/ssh/sshd_config",
                "Include /etc/ssh/sshd_config.d/*.conf\nDisableForwarding no\nX11Forwarding yes\n",
            ),
            (
                "/etc/ssh/sshd_config.d/60-hardening.conf",
                "disableforwarding YES\n",
            ),
        ]);
        let cfg = SshdConfig::read(&root).unwrap();
        let by = cfg.forwarding_disabled("X11Forwarding").unwrap();
        assert_eq!(
            (by.path.as_str(), by.line),
            ("/etc/ssh/sshd_config.d/60-hardening.conf", 1),
            "the first value wins"
        );
        assert!(cfg
            .forwarding_disabled("AllowStreamLocalForwarding")
            .is_some());
        assert!(
            cfg.forwarding_disabled("PermitTunnel").is_none(),
            "tunnels are not forwarding DisableForwarding overrides"
        );
        // `no`, or `yes` only inside a Match block, overrides nothing
        let (_d, root) = tree(&[(
            "/etc/ssh/sshd_config",
            "DisableForwarding no\nMatch User x\n  DisableForwarding yes\n",
        )]);
        let cfg = SshdConfig::read(&root).unwrap();
        assert!(cfg.forwarding_disabled("x11forwarding").is_none());
        let (_d, root) = tree(&[(
            "/etc/ssh/sshd_config",
            "Match User x\n  DisableForwarding yes\n",
        )]);
        let cfg = SshdConfig::read(&root).unwrap();
        assert!(cfg.forwarding_disabled("allowtcpforwarding").is_none());
    }

    #[test]
    fn include_loops_and_bad_files_are_errors_with_positions() {
        let (_d, root) = tree(&[
            ("/etc/ssh/sshd_config", "Include a.conf\n"),
            ("/etc/ssh/a.conf", "Include b.conf\n"),
            ("/etc/ssh/b.conf", "Include a.conf\n"),
        ]);
        let e = SshdConfig::read(&root).unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/ssh/b.conf:1: Include loop") && e.contains("/etc/ssh/a.conf"),
            "the loop is reported at the Include line that closes it: {e}"
        );

        let (d, root) = tree(&[("/etc/ssh/sshd_config", "PermitRootLogin no\n")]);
        std::fs::write(
            d.path().join("etc/ssh/sshd_config"),
            b"PermitRootLogin no\n\xff\xfe junk\n",
        )
        .unwrap();
        let e = SshdConfig::read(&root).unwrap_err().to_string();
        assert_eq!(e, "/etc/ssh/sshd_config:2: not a text file (invalid UTF-8)");

        let (d, root) = tree(&[("/etc/hostname", "x\n")]);
        assert!(matches!(
            SshdConfig::read(&root),
            Err(SshdError::Missing(_))
        ));
        std::os::unix::fs::symlink("/etc/ssh/gone", d.path().join("etc/sshd_link")).unwrap();
        std::fs::create_dir_all(d.path().join("etc/ssh")).unwrap();
        std::os::unix::fs::symlink("/etc/ssh/gone", d.path().join("etc/ssh/sshd_config")).unwrap();
        let e = SshdConfig::read(&root).unwrap_err();
        assert_eq!(
            e,
            SshdError::Read("/etc/ssh/sshd_config is a dangling symlink".into())
        );
    }

    #[test]
    fn includes_that_fan_out_are_bounded_in_total_work() {
        // 12 files, each including the next 4 times: 4^12 (16 million) inclusions for a naive
        // reader, within sshd's depth limit
        let mut files: Vec<(String, String)> = (0..12)
            .map(|i| {
                (
                    format!("/etc/ssh/f{i}.conf"),
                    format!("Include f{}.conf\n", i + 1).repeat(4),
                )
            })
            .collect();
        files.push(("/etc/ssh/f12.conf".into(), "PermitRootLogin no\n".into()));
        files.push(("/etc/ssh/sshd_config".into(), "Include f0.conf\n".into()));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let (_d, root) = tree(&refs);
        let start = std::time::Instant::now();
        let e = SshdConfig::read(&root).unwrap_err().to_string();
        assert!(
            e.contains(&format!("more than {MAX_INCLUDED_FILES} files")) && e.contains(".conf:"),
            "{e}"
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "bounded, not hours"
        );
        // a modest fan-out within the bound still computes the configuration
        let (_d, root) = tree(&[
            ("/etc/ssh/sshd_config", "Include a.conf\nInclude a.conf\n"),
            ("/etc/ssh/a.conf", "Include b.conf b.conf\n"),
            ("/etc/ssh/b.conf", "PermitRootLogin no\n"),
        ]);
        let cfg = SshdConfig::read(&root).unwrap();
        assert_eq!(cfg.settings["permitrootlogin"].value, "no");
        assert_eq!(cfg.files.len(), 3, "each file listed once: {:?}", cfg.files);
    }
}
