//! OpenSSH key files found by what they are, not by their name: every regular file under a
//! directory (`/etc/ssh`, recursively) whose first bytes are a PEM private key header or an OpenSSH
//! public key line, plus the files sshd's own `HostKey` lines name (and their `.pub` companions),
//! wherever those are. The CIS audits of host key permissions look at files this way; a key kept
//! as `/etc/ssh/server.key` or named by `HostKey /etc/ssh/keys/rsa` is as secret as
//! `ssh_host_rsa_key`.

use std::io::Read;

use crate::host::sshd::Setting;
use crate::sysroot::{EntryType, Sysroot};

/// Which keys to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Private,
    Public,
}

/// One key file and why it counts as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    pub path: String,
    pub why: String,
}

/// Directories deeper than this under the searched one are not entered.
const MAX_DEPTH: usize = 8;
/// Entries looked at, at most: a hostile tree of millions of files is an error, not a hang.
const MAX_ENTRIES: usize = 100_000;
/// Bytes read from the start of each candidate.
const HEAD_BYTES: u64 = 256;

/// Public key algorithms (and certificate types) that start an OpenSSH public key line.
const PUBLIC_PREFIXES: &[&str] = &["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-", "rsa-sha2-"];

/// What the first bytes of a file say it is.
pub fn sniff(head: &[u8]) -> Option<KeyKind> {
    let text = String::from_utf8_lossy(head);
    let first = text.trim_start().lines().next().unwrap_or_default().trim();
    if first.starts_with("-----BEGIN ") && first.ends_with("PRIVATE KEY-----") {
        return Some(KeyKind::Private);
    }
    let mut words = first.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return None;
    };
    let public = PUBLIC_PREFIXES.iter().any(|p| kind.starts_with(p))
        && blob.starts_with("AAAA")
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    public.then_some(KeyKind::Public)
}

/// The `kind` key files under `dir`, and the host keys named by `host_keys` (sshd's `HostKey`
/// lines, [`crate::host::sshd::SshdConfig::host_keys`]; none where sshd is not configured).
pub fn find(
    sysroot: &Sysroot,
    dir: &str,
    kind: KeyKind,
    host_keys: &[Setting],
) -> Result<Vec<KeyFile>, String> {
    let mut found: Vec<KeyFile> = Vec::new();
    let mut seen = 0usize;
    let mut stack = vec![(dir.trim_end_matches('/').to_string(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let entries = match sysroot.read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.is_not_found() && d == dir.trim_end_matches('/') => break,
            Err(e) => return Err(e.to_string()),
        };
        for e in entries {
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(format!(
                    "{dir} holds more than {MAX_ENTRIES} entries; refusing to sniff them all"
                ));
            }
            let path = format!("{d}/{}", e.name.to_string_lossy());
            match e.file_type {
                EntryType::Dir if depth < MAX_DEPTH => stack.push((path, depth + 1)),
                EntryType::File | EntryType::Symlink
                    if head_kind(sysroot, &path)? == Some(kind) =>
                {
                    let why = match kind {
                        KeyKind::Private => "a private key by its content",
                        KeyKind::Public => "a public key by its content",
                    };
                    found.push(KeyFile {
                        path,
                        why: why.into(),
                    });
                }
                _ => {}
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    for host_key in host_keys {
        let private = if host_key.value.starts_with('/') {
            host_key.value.clone()
        } else {
            format!("/etc/ssh/{}", host_key.value)
        };
        let path = match kind {
            KeyKind::Private => private,
            KeyKind::Public => format!("{private}.pub"),
        };
        if found.iter().any(|f| f.path == path) || sysroot.symlink_metadata(&path).is_err() {
            continue;
        }
        found.push(KeyFile {
            path,
            why: format!("named by HostKey at {}:{}", host_key.path, host_key.line),
        });
    }
    Ok(found)
}

/// What a file's first bytes say it is; `None` for anything that is not a readable regular file.
fn head_kind(sysroot: &Sysroot, path: &str) -> Result<Option<KeyKind>, String> {
    let file = match sysroot.open_file(path) {
        Ok(f) => f,
        // a dangling link, a FIFO, a socket or a directory behind a link is not a key file
        Err(e) if e.is_not_found() || e.kind() == std::io::ErrorKind::InvalidInput => {
            return Ok(None)
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut head = Vec::new();
    file.take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(sniff(&head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn keys_are_recognised_by_their_first_bytes() {
        for private in [
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n",
            "\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
            "-----BEGIN EC PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\n",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
        ] {
            assert_eq!(
                sniff(private.as_bytes()),
                Some(KeyKind::Private),
                "{private}"
            );
        }
        for public in [
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9 root@host\n",
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY=\n",
            "ssh-rsa-cert-v01@openssh.com AAAAHHNzaC1yc2EtY2VydC12MDFAb3BlbnNzaC5jb20\n",
        ] {
            assert_eq!(sniff(public.as_bytes()), Some(KeyKind::Public), "{public}");
        }
        for neither in [
            "# sshd_config\nPort 22\n",
            "-----BEGIN CERTIFICATE-----\n",
            "ssh-rsa not-base64!\n",
            "",
            "\u{0}\u{1}binary",
        ] {
            assert_eq!(sniff(neither.as_bytes()), None, "{neither:?}");
        }
    }

    #[test]
    fn keys_are_found_by_content_and_by_host_key_lines() {
        let dir = tempfile::tempdir().unwrap();
        let write = |p: &str, text: &str| {
            let p = dir.path().join(p.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n";
        let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9 root@host\n";
        write("/etc/ssh/ssh_host_ed25519_key", private);
        write("/etc/ssh/ssh_host_ed25519_key.pub", public);
        write("/etc/ssh/server.key", private);
        write("/etc/ssh/keys/nested/rsa", private);
        write(
            "/etc/ssh/moduli",
            "# Time Type Tests Tries Size Generator Modulus\n",
        );
        write("/srv/keys/hk", private);
        write("/srv/keys/hk.pub", public);
        write(
            "/etc/ssh/sshd_config",
            "HostKey /srv/keys/hk\nHostKey /etc/ssh/server.key\nHostKey /srv/keys/absent\n",
        );
        std::os::unix::fs::symlink("/nowhere", dir.path().join("etc/ssh/dangling")).unwrap();
        let sysroot = Sysroot::open(dir.path()).unwrap();
        let config = crate::host::sshd::SshdConfig::read(&sysroot).unwrap();
        let paths = |kind| -> Vec<(String, String)> {
            find(&sysroot, "/etc/ssh", kind, &config.host_keys)
                .unwrap()
                .into_iter()
                .map(|k| (k.path, k.why))
                .collect()
        };
        let private_keys = paths(KeyKind::Private);
        let names: Vec<&str> = private_keys.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "/etc/ssh/keys/nested/rsa",
                "/etc/ssh/server.key",
                "/etc/ssh/ssh_host_ed25519_key",
                "/srv/keys/hk"
            ]
        );
        assert!(private_keys[3]
            .1
            .contains("HostKey at /etc/ssh/sshd_config:1"));
        let public_keys = paths(KeyKind::Public);
        let names: Vec<&str> = public_keys.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            ["/etc/ssh/ssh_host_ed25519_key.pub", "/srv/keys/hk.pub"]
        );
    }
}
