//! `[[crypt]]`: the `crypt` family, disk encryption judged on the storage model of
//! [`crate::host::storage`] (read once per run). One named `check` per rule:
//!
//! * `mounts`: each mount point in `paths` (or, when it is not a mount of its own, the filesystem
//!   holding it) and every filesystem mounted at or under a `prefixes` entry has a dm-crypt layer
//!   between it and every disk. tmpfs, overlay, proc and other non-block filesystems are not
//!   applicable, with the reason. `accept_instance_store` counts EC2 NVMe instance store (encrypted
//!   by the instance's hardware) as encrypted.
//! * `swap`: every active swap area likewise (zram is RAM: not applicable).
//! * `cipher`: every dm-crypt layer in use has an accepted cipher (`ciphers`, globs over the
//!   dm-crypt spec `aes-xts-plain64`), at least `min_key_bits`, and key slots whose KDF is in
//!   `kdfs` with at least `min_pbkdf2_iterations` / `min_argon2_memory_kib`, from the LUKS header
//!   (plain mappings: from the crypttab entry that opened them).
//! * `crypttab`: every `/etc/crypttab` entry is an active dm-crypt mapping (`noauto` entries may be
//!   closed).
//!
//! On a live host the stack comes from mountinfo, `/proc/swaps` and sysfs; on an offline image and
//! at stage bake, `mounts` and `swap` judge what `/etc/fstab` and `/etc/crypttab` will set up at
//! boot, and `cipher` and `crypttab` are not applicable. EBS encryption is invisible from the guest:
//! EBS volumes are named by id with the `ec2:DescribeVolumes` call that tells, never judged.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::checks::params::rule_params;
use crate::checks::Check;
use crate::checks::CompileCheck;
use crate::checks::Context;
use crate::diag::Diagnostics;
use crate::host::storage::blockdev::{luks_uuid_in_dm_uuid, CryptFormat, Layer, LayerKind};
use crate::host::storage::intent::{BootConfig, Verdict};
use crate::host::storage::luks::{Kdf, LuksHeader};
use crate::host::storage::tables::{self, CrypttabEntry, FstabEntry};
use crate::host::storage::{Backing, Source, Storage, MOUNTINFO, SWAPS};
use crate::rule::{Evidence, Outcome};

/// What a `[[crypt]]` rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CryptCheckKind {
    Mounts,
    Swap,
    Cipher,
    Crypttab,
}

impl CryptCheckKind {
    fn as_str(self) -> &'static str {
        match self {
            CryptCheckKind::Mounts => "mounts",
            CryptCheckKind::Swap => "swap",
            CryptCheckKind::Cipher => "cipher",
            CryptCheckKind::Crypttab => "crypttab",
        }
    }
}

/// KDF names LUKS knows.
const KDFS: &[&str] = &["argon2id", "argon2i", "pbkdf2"];

rule_params! {
    /// TOML parameters of `[[crypt]]`.
    pub struct Crypt {
        pub check: CryptCheckKind,
        /// `mounts`: paths whose filesystem must be encrypted (the mount holding each).
        #[serde(default)]
        pub paths: Option<Spanned<Vec<Spanned<String>>>>,
        /// `mounts`: every filesystem mounted at or under these is a data volume that must be.
        #[serde(default)]
        pub prefixes: Option<Spanned<Vec<Spanned<String>>>>,
        /// `mounts`, `swap`: EC2 NVMe instance store counts as encrypted (default false).
        #[serde(default)]
        pub accept_instance_store: Option<Spanned<bool>>,
        /// `cipher`: accepted dm-crypt cipher specs, globs (`aes-xts-plain64`, `serpent-xts-*`).
        #[serde(default)]
        pub ciphers: Option<Spanned<Vec<Spanned<String>>>>,
        /// `cipher`: the smallest accepted volume key, in bits (XTS keys are two keys: 512 = AES-256).
        #[serde(default)]
        pub min_key_bits: Option<Spanned<u32>>,
        /// `cipher`: accepted key-slot KDFs: `argon2id`, `argon2i`, `pbkdf2`.
        #[serde(default)]
        pub kdfs: Option<Spanned<Vec<Spanned<String>>>>,
        /// `cipher`: fewest accepted PBKDF2 iterations.
        #[serde(default)]
        pub min_pbkdf2_iterations: Option<Spanned<u64>>,
        /// `cipher`: least accepted Argon2 memory, in KiB.
        #[serde(default)]
        pub min_argon2_memory_kib: Option<Spanned<u64>>,
    }
}

/// The validated policy of one `[[crypt]]` rule.
#[derive(Debug)]
pub struct CryptCheck {
    check: CryptCheckKind,
    paths: Vec<String>,
    prefixes: Vec<String>,
    accept_instance_store: bool,
    ciphers: Vec<glob::Pattern>,
    min_key_bits: u32,
    kdfs: Vec<String>,
    min_pbkdf2_iterations: u64,
    min_argon2_memory_kib: u64,
}

/// A mount point as the baseline gives it: absolute, normalised.
fn valid_mount_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.split('/').any(|c| c == ".." || c == ".")
        && !p.contains("//")
        && (p.len() == 1 || !p.ends_with('/'))
}

impl CompileCheck for Crypt {
    fn compile(&self, diags: &mut Diagnostics<'_>) -> Option<Box<dyn Check>> {
        let mark = diags.mark();
        let kind = self.check;
        let only = |diags: &mut Diagnostics<'_>, key: &str, span, allowed: &[CryptCheckKind]| {
            if !allowed.contains(&kind) {
                let names: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
                diags.error(
                    span,
                    format!(
                        "`{key}` does not apply to check `{}` (only to {})",
                        kind.as_str(),
                        names.join(", ")
                    ),
                );
            }
        };
        use CryptCheckKind::*;
        let mut paths = Vec::new();
        if let Some(list) = &self.paths {
            only(diags, "paths", list.span(), &[Mounts]);
            for p in list.get_ref() {
                if !valid_mount_path(p.get_ref()) {
                    diags.error(
                        p.span(),
                        format!("`{}` must be an absolute, normalised path", p.get_ref()),
                    );
                }
                paths.push(p.get_ref().clone());
            }
        }
        let mut prefixes = Vec::new();
        if let Some(list) = &self.prefixes {
            only(diags, "prefixes", list.span(), &[Mounts]);
            for p in list.get_ref() {
                if !valid_mount_path(p.get_ref()) || p.get_ref() == "/" {
                    diags.error(
                        p.span(),
                        format!(
                            "prefix `{}` must be an absolute, normalised directory other than /",
                            p.get_ref()
                        ),
                    );
                }
                prefixes.push(p.get_ref().clone());
            }
        }
        if kind == Mounts && paths.is_empty() && prefixes.is_empty() {
            diags.error(
                self.id.span(),
                "check `mounts` needs `paths` or `prefixes` (which filesystems must be encrypted)",
            );
        }
        if let Some(a) = &self.accept_instance_store {
            only(diags, "accept_instance_store", a.span(), &[Mounts, Swap]);
        }
        let mut ciphers = Vec::new();
        if let Some(list) = &self.ciphers {
            only(diags, "ciphers", list.span(), &[Cipher]);
            if list.get_ref().is_empty() {
                diags.error(list.span(), "`ciphers` must list at least one cipher");
            }
            for c in list.get_ref() {
                let text = c.get_ref();
                if text.is_empty() || text.contains(char::is_whitespace) {
                    diags.error(c.span(), format!("`{text}` is not a dm-crypt cipher spec"));
                    continue;
                }
                match glob::Pattern::new(text) {
                    Ok(p) => ciphers.push(p),
                    Err(e) => diags.error(c.span(), format!("`{text}` is not a valid glob: {e}")),
                }
            }
        } else if kind == Cipher {
            diags.error(
                self.id.span(),
                "check `cipher` needs `ciphers` (the accepted cipher specs)",
            );
        }
        let mut min_key_bits = 0;
        if let Some(bits) = &self.min_key_bits {
            only(diags, "min_key_bits", bits.span(), &[Cipher]);
            min_key_bits = *bits.get_ref();
            if !(64..=4096).contains(&min_key_bits) || min_key_bits % 8 != 0 {
                diags.error(
                    bits.span(),
                    format!("`min_key_bits` must be a multiple of 8 from 64 to 4096, found {min_key_bits}"),
                );
            }
        }
        let mut kdfs: Vec<String> = KDFS.iter().map(|s| s.to_string()).collect();
        if let Some(list) = &self.kdfs {
            only(diags, "kdfs", list.span(), &[Cipher]);
            if list.get_ref().is_empty() {
                diags.error(list.span(), "`kdfs` must list at least one KDF");
            }
            kdfs.clear();
            for k in list.get_ref() {
                if !KDFS.contains(&k.get_ref().as_str()) {
                    diags.error(
                        k.span(),
                        format!(
                            "unknown KDF `{}`, expected one of {}",
                            k.get_ref(),
                            KDFS.join(", ")
                        ),
                    );
                }
                kdfs.push(k.get_ref().clone());
            }
        }
        let mut min_pbkdf2_iterations = 0;
        if let Some(n) = &self.min_pbkdf2_iterations {
            only(diags, "min_pbkdf2_iterations", n.span(), &[Cipher]);
            min_pbkdf2_iterations = *n.get_ref();
        }
        let mut min_argon2_memory_kib = 0;
        if let Some(n) = &self.min_argon2_memory_kib {
            only(diags, "min_argon2_memory_kib", n.span(), &[Cipher]);
            min_argon2_memory_kib = *n.get_ref();
            if min_argon2_memory_kib > 4 << 20 {
                diags.error(
                    n.span(),
                    format!(
                        "`min_argon2_memory_kib` {min_argon2_memory_kib} is above LUKS2's 4 GiB"
                    ),
                );
            }
        }
        if diags.errors_since(mark) {
            return None;
        }
        Some(Box::new(CryptCheck {
            check: kind,
            paths,
            prefixes,
            accept_instance_store: self
                .accept_instance_store
                .as_ref()
                .is_some_and(|a| *a.get_ref()),
            ciphers,
            min_key_bits,
            kdfs,
            min_pbkdf2_iterations,
            min_argon2_memory_kib,
        }))
    }
}

/// The storage facts, gathered once per run for all `[[crypt]]` rules.
#[derive(Debug)]
struct SourceState(Result<Source, String>);

fn source(cx: &Context<'_>) -> Arc<SourceState> {
    cx.cache.get(|| {
        let _span = tracing::debug_span!("crypt storage").entered();
        SourceState(Source::gather(cx.sysroot, cx.stage))
    })
}

impl Check for CryptCheck {
    fn evaluate(&self, cx: &Context<'_>) -> Outcome {
        let state = source(cx);
        let source = match &state.0 {
            Ok(s) => s,
            Err(e) => return Outcome::error(e),
        };
        match (self.check, source) {
            (CryptCheckKind::Mounts, Source::Live(st)) => self.mounts_live(st),
            (CryptCheckKind::Mounts, Source::Boot { reason, config }) => {
                self.mounts_boot(config, reason)
            }
            (CryptCheckKind::Swap, Source::Live(st)) => self.swap_live(st),
            (CryptCheckKind::Swap, Source::Boot { reason, config }) => swap_boot(config, reason),
            (CryptCheckKind::Cipher, Source::Live(st)) => self.cipher(st),
            (CryptCheckKind::Crypttab, Source::Live(st)) => crypttab(st),
            (CryptCheckKind::Cipher | CryptCheckKind::Crypttab, Source::Boot { reason, .. }) => {
                Outcome::not_applicable(reason)
            }
        }
    }
}

/// Combine per-item outcomes: any failure fails (errors are kept as evidence beside it, so a
/// broken item never hides a failing one), else [`Outcome::combine`].
fn combine(parts: Vec<Outcome>, empty_reason: &str) -> Outcome {
    if !parts.iter().any(|p| matches!(p, Outcome::Fail { .. })) {
        return Outcome::combine(parts, empty_reason);
    }
    let mut evidence = Vec::new();
    let mut errors = Vec::new();
    for p in parts {
        match p {
            Outcome::Fail { evidence: e } => evidence.extend(e),
            Outcome::Error { cause } => errors.push(cause),
            _ => {}
        }
    }
    evidence.extend(
        errors
            .into_iter()
            .map(|e| Evidence::new(format!("also could not evaluate: {e}"))),
    );
    Outcome::Fail { evidence }
}

/// One line per dm-crypt layer: `cryptroot: LUKS2 aes-xts-plain64, 512-bit key, 4096-byte
/// sectors; keyslot 0: argon2id, 4 iterations, 1048576 KiB, 4 threads`.
fn describe_crypt(layer: &Layer) -> String {
    let LayerKind::Crypt {
        format,
        mapping,
        header,
        ..
    } = &layer.kind
    else {
        return layer.label();
    };
    match header {
        Some(Ok(h)) => format!("{mapping}: {}", describe_header(h)),
        Some(Err(e)) => format!("{mapping}: LUKS header unreadable ({e})"),
        None => format!(
            "{mapping}: {} dm-crypt (no header on disk)",
            format.as_str()
        ),
    }
}

fn describe_header(h: &LuksHeader) -> String {
    let segments: Vec<String> = h
        .segments
        .iter()
        .map(|s| {
            let bits = s
                .key_bits
                .map_or("unknown key size".to_string(), |b| format!("{b}-bit key"));
            let mut text = format!(
                "{} {}, {bits}, {}-byte sectors",
                format_version(h),
                s.cipher,
                s.sector_size
            );
            if let Some(i) = &s.integrity {
                text.push_str(&format!(", integrity {i}"));
            }
            text
        })
        .collect();
    let slots: Vec<String> = h
        .keyslots
        .iter()
        .map(|k| format!("keyslot {}: {}", k.id, k.kdf.describe()))
        .collect();
    let mut out = segments.join("; ");
    if !slots.is_empty() {
        out.push_str("; ");
        out.push_str(&slots.join("; "));
    }
    out
}

fn format_version(h: &LuksHeader) -> &'static str {
    if h.version == 1 {
        "LUKS1"
    } else {
        "LUKS2"
    }
}

/// For a LUKS layer: its header must have been read and agree with the mapping (same version,
/// same UUID); otherwise the cause. Other dm-crypt layers have no header to check.
fn header_problem(layer: &Layer) -> Option<String> {
    let LayerKind::Crypt {
        format,
        mapping,
        uuid,
        header,
    } = &layer.kind
    else {
        return None;
    };
    let version = format.luks_version()?;
    match header {
        None => Some(format!("{mapping}: the LUKS header was not read")),
        Some(Err(e)) => Some(format!(
            "{} ({mapping}) is a LUKS{version} mapping, but its header cannot be read: {e}",
            layer.name
        )),
        Some(Ok(h)) if h.version != version => Some(format!(
            "{} ({mapping}) is a LUKS{version} mapping, but the header below it is LUKS{}",
            layer.name, h.version
        )),
        Some(Ok(h)) => {
            let want = luks_uuid_in_dm_uuid(uuid);
            let have = h.uuid.replace('-', "").to_ascii_lowercase();
            match want {
                Some(w) if w != have => Some(format!(
                    "{} ({mapping}): the LUKS header below it has UUID {}, the mapping was opened from {w} (a detached header, or the wrong device)",
                    layer.name, h.uuid
                )),
                _ => None,
            }
        }
    }
}

/// What the evidence of a device stack says about the disks at its bottom (EBS volume ids and
/// the DescribeVolumes note, instance store).
fn disk_notes(stacks: &[&Layer]) -> Vec<Evidence> {
    let mut out: Vec<Evidence> = Vec::new();
    for s in stacks {
        for l in s.layers() {
            if let LayerKind::Disk {
                nvme: Some(nvme), ..
            } = &l.kind
            {
                let text = nvme.describe(&l.name);
                if !out.iter().any(|e| e.message == text) {
                    out.push(Evidence::new(text));
                }
            }
        }
    }
    out
}

impl CryptCheck {
    /// The outcome for one mount or swap area on a live stack. `what` names it (`/`, `swap
    /// /dev/dm-1`), `line` is its line in `path` (mountinfo or /proc/swaps).
    fn judge_backing(
        &self,
        what: &str,
        path: &str,
        line: usize,
        backing: &Backing,
        extra: Vec<Evidence>,
    ) -> Outcome {
        let devs = match backing {
            Backing::NotBlock(class) => {
                return Outcome::not_applicable(class.reason(what));
            }
            Backing::Unresolved(e) => return Outcome::error(format!("{what}: {e}")),
            Backing::Devices(devs) => devs,
        };
        let mut stacks = Vec::new();
        for d in devs {
            match d {
                Ok(l) => stacks.push(l),
                Err(e) => {
                    return Outcome::error(format!("{what}: the device stack cannot be read: {e}"))
                }
            }
        }
        if stacks.iter().all(|s| s.all_ram()) {
            return Outcome::not_applicable(format!(
                "{what} is on RAM ({}): nothing of it is at rest",
                stacks
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let chain = stacks
            .iter()
            .map(|s| s.chain())
            .collect::<Vec<_>>()
            .join(" + ");
        let ev = Evidence::new(format!("{what} -> {chain}"))
            .path(path)
            .line(line);
        let bottoms: Vec<&Layer> = stacks
            .iter()
            .flat_map(|s| s.unencrypted_bottoms(self.accept_instance_store))
            .collect();
        let mut notes = extra;
        notes.extend(disk_notes(&stacks));
        if let Some(l) = bottoms
            .iter()
            .find(|l| matches!(l.kind, LayerKind::Loop { .. }))
        {
            return Outcome::error(format!(
                "{what} is on loop device {}: whether the filesystem holding its backing file is encrypted is not followed",
                l.label()
            ));
        }
        if !bottoms.is_empty() {
            let names: Vec<String> = bottoms.iter().map(|l| l.name.clone()).collect();
            let integrity_only = stacks
                .iter()
                .flat_map(|s| s.layers())
                .any(|l| matches!(l.kind, LayerKind::Integrity { .. }));
            let mut found = format!(
                "not encrypted: {} reached without dm-crypt",
                names.join(", ")
            );
            if integrity_only {
                found.push_str(" (dm-verity/dm-integrity protect integrity, not confidentiality)");
            }
            let mut evidence = vec![ev
                .found(found)
                .expected("a dm-crypt layer above every disk")];
            evidence.extend(notes);
            return Outcome::Fail { evidence };
        }
        let layers: Vec<&Layer> = stacks.iter().flat_map(|s| s.layers()).collect();
        let problems: Vec<String> = layers.iter().filter_map(|l| header_problem(l)).collect();
        if !problems.is_empty() {
            return Outcome::error(format!("{what}: {}", problems.join("; ")));
        }
        let crypts: Vec<String> = layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Crypt { .. }))
            .map(|l| describe_crypt(l))
            .collect();
        let found = if crypts.is_empty() {
            "instance store only (hardware-encrypted, accepted by accept_instance_store)"
                .to_string()
        } else {
            crypts.join("; ")
        };
        let mut evidence = vec![ev.found(found)];
        evidence.extend(notes);
        Outcome::Pass { evidence }
    }

    fn mounts_live(&self, st: &Storage) -> Outcome {
        // target mount index -> the required paths it holds
        let mut targets: Vec<(usize, Vec<String>)> = Vec::new();
        let mut parts = Vec::new();
        let points: Vec<&str> = st.mounts.iter().map(|(m, _)| m.point.as_str()).collect();
        for p in &self.paths {
            let holder = points
                .iter()
                .enumerate()
                .filter(|(_, point)| tables::is_under(p, point))
                .max_by_key(|(_, point)| point.len())
                .map(|(i, _)| i);
            match holder {
                Some(i) => match targets.iter_mut().find(|(t, _)| *t == i) {
                    Some((_, held)) => held.push(p.clone()),
                    None => targets.push((i, vec![p.clone()])),
                },
                None => parts.push(Outcome::error(format!("no mount in {MOUNTINFO} holds {p}"))),
            }
        }
        for (i, point) in points.iter().enumerate() {
            if self.prefixes.iter().any(|pre| tables::is_under(point, pre))
                && !targets.iter().any(|(t, _)| *t == i)
            {
                targets.push((i, vec![]));
            }
        }
        targets.sort_by_key(|(i, _)| *i);
        for (i, held) in targets {
            let (m, backing) = &st.mounts[i];
            let mut extra = Vec::new();
            let others: Vec<&String> = held.iter().filter(|h| **h != m.point).collect();
            if !others.is_empty() {
                let list: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
                let (verb, pronoun) = if list.len() == 1 {
                    ("is not a separate mount", "it is")
                } else {
                    ("are not separate mounts", "they are")
                };
                extra.push(Evidence::new(format!(
                    "{} {verb}: {pronoun} on {}",
                    list.join(", "),
                    m.point
                )));
            }
            let what = format!("{} ({})", m.point, m.fstype);
            let outcome = match backing {
                Backing::NotBlock(class) => {
                    Outcome::not_applicable(format!("{}: {}", m.point, class.reason(&m.fstype)))
                }
                _ => self.judge_backing(&what, MOUNTINFO, m.line, backing, extra),
            };
            parts.push(outcome);
        }
        combine(parts, "no required mount point is mounted")
    }

    fn mounts_boot(&self, cfg: &BootConfig, reason: &str) -> Outcome {
        let mut judged: Vec<(Option<&FstabEntry>, Vec<String>, Verdict)> = Vec::new();
        for p in &self.paths {
            let (entry, verdict) = cfg.judge_path(p);
            let same = judged.iter_mut().find(|(e, _, _)| match (e, entry) {
                (Some(a), Some(b)) => a.line == b.line,
                _ => false,
            });
            match same {
                Some((_, held, _)) => held.push(p.clone()),
                None => judged.push((entry, vec![p.clone()], verdict)),
            }
        }
        for entry in cfg.under(&self.prefixes) {
            if !judged
                .iter()
                .any(|(e, _, _)| e.is_some_and(|e| e.line == entry.line))
            {
                judged.push((Some(entry), vec![], cfg.judge_entry(entry)));
            }
        }
        let parts = judged
            .into_iter()
            .map(|(entry, held, verdict)| {
                let subject = match entry {
                    Some(e) => {
                        let others: Vec<&str> = held
                            .iter()
                            .filter(|h| **h != e.point)
                            .map(|s| s.as_str())
                            .collect();
                        if others.is_empty() {
                            format!("{} at boot", e.point)
                        } else {
                            format!("{} at boot (holding {})", e.point, others.join(", "))
                        }
                    }
                    None => held.join(", "),
                };
                boot_outcome(&subject, entry, verdict, reason)
            })
            .collect();
        combine(
            parts,
            &format!("no required mount point in /etc/fstab ({reason})"),
        )
    }

    fn swap_live(&self, st: &Storage) -> Outcome {
        if st.swaps.is_empty() {
            return Outcome::not_applicable(format!("no active swap ({SWAPS} lists none)"));
        }
        let parts = st
            .swaps
            .iter()
            .map(|s| {
                let what = match &s.on_mount {
                    Some(m) => format!("swap file {} (on {m})", s.entry.path),
                    None => format!("swap {}", s.entry.path),
                };
                self.judge_backing(&what, SWAPS, s.entry.line, &s.backing, vec![])
            })
            .collect();
        combine(parts, "no active swap")
    }

    fn cipher(&self, st: &Storage) -> Outcome {
        let layers = st.crypt_layers();
        if layers.is_empty() {
            return Outcome::not_applicable(
                "no dm-crypt mapping under any mounted filesystem or active swap area",
            );
        }
        let parts = layers
            .into_iter()
            .map(|(layer, above)| self.judge_cipher(layer, &above, &st.crypttab))
            .collect();
        combine(parts, "no dm-crypt mapping in use")
    }

    fn judge_cipher(&self, layer: &Layer, above: &str, crypttab: &[CrypttabEntry]) -> Outcome {
        let LayerKind::Crypt {
            format,
            mapping,
            header,
            ..
        } = &layer.kind
        else {
            return Outcome::not_applicable("not dm-crypt");
        };
        let subject = format!("{} ({mapping}, under {above})", layer.name);
        match format {
            CryptFormat::Luks1 | CryptFormat::Luks2 => {
                if let Some(problem) = header_problem(layer) {
                    return Outcome::error(problem);
                }
                let Some(Ok(h)) = header else {
                    return Outcome::error(format!("{subject}: no LUKS header"));
                };
                let mut fails = Vec::new();
                let mut unknown = Vec::new();
                for s in &h.segments {
                    if let Some(why) = self.cipher_problem(&s.cipher) {
                        fails.push(format!("segment {}: {why}", s.id));
                    }
                    match s.key_bits {
                        Some(b) if b < self.min_key_bits => fails.push(format!(
                            "segment {}: {b}-bit key, below {}",
                            s.id, self.min_key_bits
                        )),
                        None if self.min_key_bits > 0 => unknown.push(format!(
                            "segment {}: its key size is unknown (no keyslot holds its key)",
                            s.id
                        )),
                        _ => {}
                    }
                }
                for k in &h.keyslots {
                    if let Some(why) = self.kdf_problem(&k.kdf) {
                        fails.push(format!("keyslot {}: {why}", k.id));
                    }
                }
                let ev = Evidence::new(format!("{subject}: {}", describe_header(h)));
                let mut notes: Vec<Evidence> = h.notes.iter().map(|n| Evidence::new(n.clone())).collect();
                if !fails.is_empty() {
                    let mut evidence = vec![ev.found(fails.join("; ")).expected(self.expected())];
                    evidence.append(&mut notes);
                    Outcome::Fail { evidence }
                } else if !unknown.is_empty() {
                    Outcome::error(format!("{subject}: {}", unknown.join("; ")))
                } else {
                    let mut evidence = vec![ev];
                    evidence.append(&mut notes);
                    Outcome::Pass { evidence }
                }
            }
            CryptFormat::Plain => {
                let Some(entry) = crypttab.iter().find(|c| &c.name == mapping) else {
                    return Outcome::error(format!(
                        "{subject}: a plain dm-crypt mapping has no header, its cipher is only in the device-mapper table (not in sysfs), and no /etc/crypttab entry says how it was opened"
                    ));
                };
                let ev = Evidence::new(format!(
                    "{subject}: plain dm-crypt (no header), opened by {}",
                    entry.describe()
                ))
                .path("/etc/crypttab")
                .line(entry.line);
                let (Some(cipher), Some(size)) = (entry.option("cipher"), entry.option("size")) else {
                    return Outcome::error(format!(
                        "{subject}: a plain dm-crypt mapping's cipher is not in sysfs, and {} does not give both cipher= and size= (cryptsetup's compiled-in defaults applied, which this agent cannot see)",
                        entry.describe()
                    ));
                };
                let mut fails = Vec::new();
                if let Some(why) = self.cipher_problem(cipher) {
                    fails.push(why);
                }
                match size.parse::<u32>() {
                    Ok(b) if b < self.min_key_bits => {
                        fails.push(format!("{b}-bit key, below {}", self.min_key_bits))
                    }
                    Ok(_) => {}
                    Err(_) => fails.push(format!("size={size} is not a number of bits")),
                }
                let ev = ev.found(format!("{cipher}, {size}-bit key"));
                if fails.is_empty() {
                    Outcome::pass(ev)
                } else {
                    Outcome::fail(ev.found(fails.join("; ")).expected(self.expected()))
                }
            }
            other => Outcome::error(format!(
                "{subject}: a {} mapping keeps its cipher in an encrypted header, which cannot be read without its key",
                other.as_str()
            )),
        }
    }

    fn cipher_problem(&self, cipher: &str) -> Option<String> {
        let ok = self
            .ciphers
            .iter()
            .any(|p| p.matches_with(cipher, glob::MatchOptions::new()));
        (!ok).then(|| format!("cipher {cipher} is not accepted"))
    }

    fn kdf_problem(&self, kdf: &Kdf) -> Option<String> {
        if !self.kdfs.iter().any(|k| k == kdf.name()) {
            return Some(format!("KDF {} is not accepted", kdf.name()));
        }
        match kdf {
            Kdf::Pbkdf2 { iterations, .. } if *iterations < self.min_pbkdf2_iterations => {
                Some(format!(
                    "pbkdf2 with {iterations} iterations, below {}",
                    self.min_pbkdf2_iterations
                ))
            }
            Kdf::Argon2i { memory_kib, .. } | Kdf::Argon2id { memory_kib, .. }
                if *memory_kib < self.min_argon2_memory_kib =>
            {
                Some(format!(
                    "{} with {memory_kib} KiB, below {} KiB",
                    kdf.name(),
                    self.min_argon2_memory_kib
                ))
            }
            _ => None,
        }
    }

    fn expected(&self) -> String {
        let ciphers: Vec<&str> = self.ciphers.iter().map(|p| p.as_str()).collect();
        let mut parts = vec![format!("cipher {}", ciphers.join(" or "))];
        if self.min_key_bits > 0 {
            parts.push(format!("at least {}-bit keys", self.min_key_bits));
        }
        parts.push(format!("KDF {}", self.kdfs.join(" or ")));
        if self.min_pbkdf2_iterations > 0 {
            parts.push(format!(
                "pbkdf2 at least {} iterations",
                self.min_pbkdf2_iterations
            ));
        }
        if self.min_argon2_memory_kib > 0 {
            parts.push(format!(
                "argon2 at least {} KiB",
                self.min_argon2_memory_kib
            ));
        }
        parts.join(", ")
    }
}

/// An intent verdict as an outcome, with the fstab position and why the live stack was not used.
fn boot_outcome(
    subject: &str,
    entry: Option<&FstabEntry>,
    verdict: Verdict,
    reason: &str,
) -> Outcome {
    let ev = |text: String| {
        let e = Evidence::new(format!("{subject}: {text}"));
        match entry {
            Some(entry) => e.path("/etc/fstab").line(entry.line),
            None => e,
        }
    };
    let how = Evidence::new(format!("{reason}; judged on /etc/fstab and /etc/crypttab"));
    match verdict {
        Verdict::Encrypted(t) => Outcome::Pass {
            evidence: vec![ev(t), how],
        },
        Verdict::NotEncrypted(t) => Outcome::Fail {
            evidence: vec![
                ev(t)
                    .found("not encrypted at boot")
                    .expected("a /dev/mapper/<name> opened by /etc/crypttab"),
                how,
            ],
        },
        Verdict::Unknown(t) => Outcome::error(format!("{subject}: {t} ({reason})")),
        Verdict::NotApplicable(t) => Outcome::not_applicable(format!("{subject}: {t}")),
    }
}

fn swap_boot(cfg: &BootConfig, reason: &str) -> Outcome {
    let swaps = cfg.swaps();
    if swaps.is_empty() {
        return Outcome::not_applicable(format!("no swap area in /etc/fstab ({reason})"));
    }
    let parts = swaps
        .into_iter()
        .map(|e| {
            boot_outcome(
                &format!("swap {} at boot", e.source),
                Some(e),
                cfg.judge_entry(e),
                reason,
            )
        })
        .collect();
    combine(parts, "no swap area")
}

fn crypttab(st: &Storage) -> Outcome {
    if st.crypttab.is_empty() {
        return Outcome::not_applicable("no /etc/crypttab entries");
    }
    let parts = st
        .crypttab
        .iter()
        .map(|entry| {
            let ev = Evidence::new(entry.describe())
                .path("/etc/crypttab")
                .line(entry.line);
            match st.mappings.iter().find(|m| m.name == entry.name) {
                Some(m)
                    if m.uuid.starts_with("CRYPT-")
                        && !m.uuid.starts_with("CRYPT-VERITY-")
                        && !m.uuid.starts_with("CRYPT-INTEGRITY-") =>
                {
                    let ty = m.uuid.split('-').nth(1).unwrap_or("");
                    Outcome::pass(ev.found(format!("active as {} (CRYPT-{ty})", m.kernel)))
                }
                Some(m) => Outcome::fail(
                    ev.found(format!(
                        "/dev/mapper/{} is {}, not a dm-crypt mapping (dm uuid `{}`)",
                        m.name, m.kernel, m.uuid
                    ))
                    .expected("an active dm-crypt mapping"),
                ),
                None if entry.has_flag("noauto") => {
                    Outcome::pass(ev.found("not active: noauto (opened on demand, not at boot)"))
                }
                None => Outcome::fail(
                    ev.found(format!("no active mapping /dev/mapper/{}", entry.name))
                        .expected("opened at boot (or by name later)"),
                ),
            }
        })
        .collect();
    combine(parts, "no /etc/crypttab entries")
}
