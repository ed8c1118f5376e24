//! The stack of block devices under a filesystem or swap area, from sysfs: `/sys/dev/block/MAJ:MIN`
//! names the device, and each layer's `slaves/` (device mapper, md RAID) or its parent disk (a
//! partition's sysfs directory sits inside its disk's) lead down to the physical disks. Each layer
//! is classified:
//!
//! * device mapper (`dm/` present): by the UUID its creator gave it (`dm/uuid`): `CRYPT-LUKS1-…`,
//!   `CRYPT-LUKS2-…`, `CRYPT-PLAIN-…`, `CRYPT-TCRYPT-…`, `CRYPT-BITLK-…` (dm-crypt, the name after the
//!   UUID is the mapping), `CRYPT-VERITY-…` / `CRYPT-INTEGRITY-…` (integrity only, not
//!   encryption), `LVM-…` (a logical volume), anything else (multipath, …) by its prefix;
//! * a partition (`partition` attribute), a software RAID (`md/`), a loop device (`loop/`), RAM
//!   (`zram*`, `ram*`: nothing at rest);
//! * a disk, with its transport (the bus its `device` is on: `virtio`, `nvme`, `scsi`, `xen`) and,
//!   for NVMe, what EC2 says it is ([`crate::host::storage::ebs`]).
//!
//! For a LUKS mapping the header of the device below it is read through the sysroot (the device
//! node `/dev/<DEVNAME>`; in a fixture tree a header image file) and kept with the layer. A walk
//! that cannot be completed (missing sysfs entries, a loop, more than [`MAX_DEPTH`] layers) is an
//! error naming the path; it never guesses.

use std::fmt;

use serde::Serialize;

use super::ebs::NvmeDisk;
use super::luks::{self, LuksHeader};
use super::tables::DevNum;
use crate::sysroot::{Sysroot, SysrootError};

/// Deepest stack walked (a real one is rarely more than five layers).
pub const MAX_DEPTH: usize = 16;

/// Why a device stack could not be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("no block device {dev} in /sys/dev/block")]
    NoDevice { dev: DevNum },
    #[error("no block device named `{name}` in /sys/class/block")]
    NoName { name: String },
    #[error("{0}")]
    Read(String),
    #[error("device stack deeper than {MAX_DEPTH} layers at {name} (a loop in sysfs?)")]
    TooDeep { name: String },
}

impl ChainError {
    fn read(e: SysrootError) -> ChainError {
        ChainError::Read(e.to_string())
    }
}

/// The dm-crypt formats a `CRYPT-<FORMAT>-` UUID names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CryptFormat {
    Luks1,
    Luks2,
    Plain,
    Tcrypt,
    Bitlk,
    /// Another `CRYPT-` type that encrypts (`CRYPT-<X>`), kept by name.
    Other(String),
}

impl CryptFormat {
    pub fn as_str(&self) -> &str {
        match self {
            CryptFormat::Luks1 => "LUKS1",
            CryptFormat::Luks2 => "LUKS2",
            CryptFormat::Plain => "PLAIN",
            CryptFormat::Tcrypt => "TCRYPT",
            CryptFormat::Bitlk => "BITLK",
            CryptFormat::Other(s) => s,
        }
    }
    pub fn luks_version(&self) -> Option<u16> {
        match self {
            CryptFormat::Luks1 => Some(1),
            CryptFormat::Luks2 => Some(2),
            _ => None,
        }
    }
}

/// What one layer of the stack is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LayerKind {
    /// dm-crypt. `uuid` is the mapping's dm UUID; `header` the LUKS header of the device below,
    /// read for LUKS1/LUKS2 (an error says why it could not be).
    Crypt {
        format: CryptFormat,
        mapping: String,
        uuid: String,
        #[serde(skip)]
        header: Option<Result<LuksHeader, String>>,
    },
    /// dm-verity / dm-integrity: integrity protection, no confidentiality.
    Integrity {
        target: String,
        mapping: String,
    },
    /// An LVM logical volume.
    Lvm {
        mapping: String,
    },
    /// Another device-mapper device (multipath, a hand-made table), by its UUID prefix.
    Dm {
        mapping: String,
        uuid: String,
    },
    Partition {
        number: Option<u32>,
    },
    Raid {
        level: String,
    },
    Loop {
        backing_file: Option<String>,
    },
    /// A RAM-backed disk (zram, brd): nothing reaches a disk.
    Ram,
    Disk {
        transport: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        nvme: Option<NvmeDisk>,
    },
    /// A stacked device of another kind (bcache, …): its slaves are walked.
    Stacked,
}

/// One block device and the ones it is built on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// The kernel name (`dm-0`, `vda2`, `nvme1n1`).
    pub name: String,
    pub dev: DevNum,
    pub kind: LayerKind,
    pub below: Vec<Layer>,
}

impl Layer {
    /// `dm-0 (CRYPT-LUKS2, cryptroot)`, `vda2 (partition)`, `vda (disk, virtio)`.
    pub fn label(&self) -> String {
        let what = match &self.kind {
            LayerKind::Crypt {
                format, mapping, ..
            } => format!("CRYPT-{}, {mapping}", format.as_str()),
            LayerKind::Integrity { target, mapping } => format!("{target}, {mapping}"),
            LayerKind::Lvm { mapping } => format!("LVM, {mapping}"),
            LayerKind::Dm { mapping, uuid } => {
                let prefix = uuid.split('-').next().unwrap_or("");
                if prefix.is_empty() {
                    format!("device mapper, {mapping}")
                } else {
                    format!("device mapper {prefix}, {mapping}")
                }
            }
            LayerKind::Partition { .. } => "partition".into(),
            LayerKind::Raid { level } => format!("md {level}"),
            LayerKind::Loop {
                backing_file: Some(f),
            } => format!("loop, {f}"),
            LayerKind::Loop { backing_file: None } => "loop".into(),
            LayerKind::Ram => "RAM disk".into(),
            LayerKind::Disk {
                transport,
                nvme: Some(NvmeDisk::Ebs { .. }),
            } => format!("disk, {transport}, EBS"),
            LayerKind::Disk {
                transport,
                nvme: Some(NvmeDisk::InstanceStore),
            } => format!("disk, {transport}, instance store"),
            LayerKind::Disk { transport, .. } => format!("disk, {transport}"),
            LayerKind::Stacked => "stacked".into(),
        };
        format!("{} ({what})", self.name)
    }

    /// The stack as one line: `dm-0 (CRYPT-LUKS2, cryptroot) -> vda2 (partition) -> vda (disk,
    /// virtio)`; several devices below one layer are listed in braces, `; `-separated.
    pub fn chain(&self) -> String {
        let mut out = self.label();
        match self.below.len() {
            0 => {}
            1 => {
                out.push_str(" -> ");
                out.push_str(&self.below[0].chain());
            }
            _ => {
                let parts: Vec<String> = self.below.iter().map(Layer::chain).collect();
                out.push_str(&format!(" -> {{{}}}", parts.join("; ")));
            }
        }
        out
    }

    /// Every layer of the stack, top first.
    pub fn layers(&self) -> Vec<&Layer> {
        let mut out = vec![self];
        for b in &self.below {
            out.extend(b.layers());
        }
        out
    }

    /// The paths from this layer down to a disk that pass through no dm-crypt layer: each as the
    /// bottom layer reached. Empty means every byte that reaches a disk is encrypted (RAM is no
    /// disk: nothing of a zram device is at rest).
    /// `hardware_ok` says whether an instance-store disk counts as encrypted.
    pub fn unencrypted_bottoms(&self, hardware_ok: bool) -> Vec<&Layer> {
        match &self.kind {
            LayerKind::Crypt { .. } | LayerKind::Ram => vec![],
            LayerKind::Disk {
                nvme: Some(NvmeDisk::InstanceStore),
                ..
            } if hardware_ok => vec![],
            _ if self.below.is_empty() => vec![self],
            _ => self
                .below
                .iter()
                .flat_map(|b| b.unencrypted_bottoms(hardware_ok))
                .collect(),
        }
    }

    /// True when the bottom of every path is RAM (zram swap): nothing at rest.
    pub fn all_ram(&self) -> bool {
        match &self.kind {
            LayerKind::Ram => true,
            _ if self.below.is_empty() => false,
            _ => self.below.iter().all(Layer::all_ram),
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.chain())
    }
}

/// Walks device stacks through one sysroot's `/sys` (and reads LUKS headers through its `/dev`).
pub struct Walker<'a> {
    sysroot: &'a Sysroot,
}

impl<'a> Walker<'a> {
    pub fn new(sysroot: &'a Sysroot) -> Self {
        Walker { sysroot }
    }

    /// The stack under device `dev`.
    pub fn walk_dev(&self, dev: DevNum) -> Result<Layer, ChainError> {
        let link = format!("/sys/dev/block/{dev}");
        let target = match self.sysroot.read_link(&link) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Err(ChainError::NoDevice { dev }),
            Err(e) => return Err(ChainError::read(e)),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| ChainError::Read(format!("{link}: link target has no name")))?;
        self.walk_name(&name, 0)
    }

    /// The stack under the block device with kernel name `name` (`vda2`, `dm-0`).
    pub fn walk_name(&self, name: &str, depth: usize) -> Result<Layer, ChainError> {
        if depth > MAX_DEPTH {
            return Err(ChainError::TooDeep {
                name: name.to_string(),
            });
        }
        let dir = format!("/sys/class/block/{name}");
        if !self.sysroot.exists(&dir) {
            return Err(ChainError::NoName {
                name: name.to_string(),
            });
        }
        let dev = self
            .attr(&format!("{dir}/dev"))?
            .as_deref()
            .and_then(DevNum::parse)
            .ok_or_else(|| ChainError::Read(format!("{dir}/dev: missing or not MAJ:MIN")))?;
        let uevent = self.attr(&format!("{dir}/uevent"))?.unwrap_or_default();
        let devtype = uevent_value(&uevent, "DEVTYPE");
        let slaves = |this: &Self| -> Result<Vec<Layer>, ChainError> {
            let list = match this.sysroot.read_dir(format!("{dir}/slaves")) {
                Ok(l) => l,
                Err(e) if e.is_not_found() => vec![],
                Err(e) => return Err(ChainError::read(e)),
            };
            list.iter()
                .map(|e| this.walk_name(&e.name.to_string_lossy(), depth + 1))
                .collect()
        };

        let (kind, below) = if self.sysroot.exists(format!("{dir}/dm")) {
            let uuid = self.attr(&format!("{dir}/dm/uuid"))?.unwrap_or_default();
            let mapping = self.attr(&format!("{dir}/dm/name"))?.unwrap_or_default();
            let below = slaves(self)?;
            let kind = classify_dm(&uuid, &mapping);
            let kind = match kind {
                LayerKind::Crypt {
                    format,
                    mapping,
                    uuid,
                    ..
                } => {
                    let header = format
                        .luks_version()
                        .map(|_| self.luks_header(&below).map_err(|e| e.to_string()));
                    LayerKind::Crypt {
                        format,
                        mapping,
                        uuid,
                        header,
                    }
                }
                other => other,
            };
            (kind, below)
        } else if devtype.as_deref() == Some("partition")
            || self.sysroot.exists(format!("{dir}/partition"))
        {
            let number = self
                .attr(&format!("{dir}/partition"))?
                .and_then(|n| n.trim().parse().ok());
            let target = self.sysroot.read_link(&dir).map_err(ChainError::read)?;
            let parent = target
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    ChainError::Read(format!("{dir}: no parent disk in its sysfs path"))
                })?;
            (
                LayerKind::Partition { number },
                vec![self.walk_name(&parent, depth + 1)?],
            )
        } else if self.sysroot.exists(format!("{dir}/md")) {
            let level = self
                .attr(&format!("{dir}/md/level"))?
                .unwrap_or_else(|| "raid".into());
            (LayerKind::Raid { level }, slaves(self)?)
        } else if self.sysroot.exists(format!("{dir}/loop")) {
            let backing_file = self.attr(&format!("{dir}/loop/backing_file"))?;
            (LayerKind::Loop { backing_file }, vec![])
        } else if name.starts_with("zram") || is_brd(name) {
            (LayerKind::Ram, vec![])
        } else {
            let below = slaves(self)?;
            if below.is_empty() {
                (self.disk(&dir, name)?, vec![])
            } else {
                (LayerKind::Stacked, below)
            }
        };
        Ok(Layer {
            name: name.to_string(),
            dev,
            kind,
            below,
        })
    }

    /// A sysfs attribute, trimmed; `None` when it does not exist.
    fn attr(&self, path: &str) -> Result<Option<String>, ChainError> {
        match self.sysroot.read(path) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_string())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(ChainError::read(e)),
        }
    }

    fn disk(&self, dir: &str, name: &str) -> Result<LayerKind, ChainError> {
        let subsystem = self
            .sysroot
            .read_link(format!("{dir}/device/subsystem"))
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
        let transport = match subsystem.as_deref() {
            Some("nvme" | "nvme-subsystem") => "nvme".to_string(),
            Some(s) => s.to_string(),
            None if name.starts_with("nvme") => "nvme".to_string(),
            None => "unknown transport".to_string(),
        };
        let nvme = if transport == "nvme" {
            let model = self
                .attr(&format!("{dir}/device/model"))?
                .unwrap_or_default();
            let serial = self
                .attr(&format!("{dir}/device/serial"))?
                .unwrap_or_default();
            Some(NvmeDisk::classify(&model, &serial))
        } else {
            None
        };
        Ok(LayerKind::Disk { transport, nvme })
    }

    /// The LUKS header on the one device below a LUKS mapping, checked to be the device sysfs
    /// names (a block device node with another number is refused).
    fn luks_header(&self, below: &[Layer]) -> Result<LuksHeader, String> {
        let [lower] = below else {
            return Err(format!(
                "a LUKS mapping should sit on exactly one device, sysfs lists {}",
                below.len()
            ));
        };
        let uevent = self
            .attr(&format!("/sys/class/block/{}/uevent", lower.name))
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let devname = uevent_value(&uevent, "DEVNAME").unwrap_or_else(|| lower.name.clone());
        let path = format!("/dev/{devname}");
        let read = |len: usize| -> Result<Vec<u8>, String> {
            let (bytes, rdev) = self
                .sysroot
                .read_device_head(&path, len)
                .map_err(|e| e.to_string())?;
            if let Some((major, minor)) = rdev {
                let found = DevNum { major, minor };
                if found != lower.dev {
                    return Err(format!(
                        "{path} is block device {found}, not {} as sysfs says",
                        lower.dev
                    ));
                }
            }
            Ok(bytes)
        };
        let head = read(luks::LUKS2_BINARY_LEN)?;
        let want = luks::wanted_len(&head);
        let bytes = if want > head.len() { read(want)? } else { head };
        luks::parse(&bytes).map_err(|e| format!("{path}: {e}"))
    }
}

/// `KEY=value` from a uevent file.
pub fn uevent_value(uevent: &str, key: &str) -> Option<String> {
    uevent.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k == key).then(|| v.trim().to_string())
    })
}

/// `ram0`, `ram15`: the brd RAM disk driver.
fn is_brd(name: &str) -> bool {
    name.strip_prefix("ram")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Classify a device-mapper device by its UUID (see the module docs).
pub fn classify_dm(uuid: &str, mapping: &str) -> LayerKind {
    let mapping = mapping.to_string();
    if let Some(rest) = uuid.strip_prefix("CRYPT-") {
        let ty = rest.split('-').next().unwrap_or("");
        let format = match ty {
            "LUKS1" => CryptFormat::Luks1,
            "LUKS2" => CryptFormat::Luks2,
            "PLAIN" => CryptFormat::Plain,
            "TCRYPT" => CryptFormat::Tcrypt,
            "BITLK" => CryptFormat::Bitlk,
            "VERITY" | "INTEGRITY" => {
                return LayerKind::Integrity {
                    target: ty.to_string(),
                    mapping,
                }
            }
            other => CryptFormat::Other(other.to_string()),
        };
        LayerKind::Crypt {
            format,
            mapping,
            uuid: uuid.to_string(),
            header: None,
        }
    } else if uuid.starts_with("LVM-") {
        LayerKind::Lvm { mapping }
    } else {
        LayerKind::Dm {
            mapping,
            uuid: uuid.to_string(),
        }
    }
}

/// The LUKS UUID a dm-crypt mapping's dm UUID embeds (`CRYPT-LUKS2-<32 hex>-<name>`), without
/// dashes, lowercase.
pub fn luks_uuid_in_dm_uuid(dm_uuid: &str) -> Option<String> {
    let mut parts = dm_uuid.splitn(4, '-');
    let (_, _, hex) = (parts.next()?, parts.next()?, parts.next()?);
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_uuids_classify() {
        let c = |u: &str| classify_dm(u, "m");
        assert!(matches!(
            c("CRYPT-LUKS2-33c8406eb8df44a9a05b452c86739125-cryptroot"),
            LayerKind::Crypt {
                format: CryptFormat::Luks2,
                ..
            }
        ));
        assert!(matches!(
            c("CRYPT-LUKS1-abc-x"),
            LayerKind::Crypt {
                format: CryptFormat::Luks1,
                ..
            }
        ));
        assert!(matches!(
            c("CRYPT-PLAIN-cswap"),
            LayerKind::Crypt {
                format: CryptFormat::Plain,
                ..
            }
        ));
        for t in ["TCRYPT", "BITLK"] {
            assert!(
                matches!(c(&format!("CRYPT-{t}-x")), LayerKind::Crypt { .. }),
                "{t}"
            );
        }
        assert!(matches!(
            c("CRYPT-VERITY-abc-root"),
            LayerKind::Integrity { .. }
        ));
        assert!(matches!(
            c("CRYPT-INTEGRITY-x"),
            LayerKind::Integrity { .. }
        ));
        assert!(matches!(c("LVM-abcdef"), LayerKind::Lvm { .. }));
        assert!(matches!(c("mpath-3600"), LayerKind::Dm { .. }));
        assert!(matches!(c(""), LayerKind::Dm { .. }));
        assert_eq!(
            luks_uuid_in_dm_uuid("CRYPT-LUKS2-33C8406EB8DF44A9A05B452C86739125-root").as_deref(),
            Some("33c8406eb8df44a9a05b452c86739125")
        );
        assert_eq!(luks_uuid_in_dm_uuid("CRYPT-PLAIN-cswap"), None);
    }

    #[test]
    fn unencrypted_bottoms_stop_at_crypt_and_accepted_hardware() {
        let disk = |name: &str, nvme: Option<NvmeDisk>| Layer {
            name: name.into(),
            dev: DevNum {
                major: 259,
                minor: 0,
            },
            kind: LayerKind::Disk {
                transport: "nvme".into(),
                nvme,
            },
            below: vec![],
        };
        let crypt = Layer {
            name: "dm-0".into(),
            dev: DevNum {
                major: 253,
                minor: 0,
            },
            kind: classify_dm("CRYPT-PLAIN-x", "x"),
            below: vec![disk("nvme1n1", None)],
        };
        let lvm = Layer {
            name: "dm-1".into(),
            dev: DevNum {
                major: 253,
                minor: 1,
            },
            kind: LayerKind::Lvm {
                mapping: "vg-lv".into(),
            },
            below: vec![crypt, disk("nvme2n1", Some(NvmeDisk::InstanceStore))],
        };
        assert_eq!(
            lvm.unencrypted_bottoms(false)
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>(),
            ["nvme2n1"]
        );
        assert!(lvm.unencrypted_bottoms(true).is_empty());
        assert_eq!(
            lvm.chain(),
            "dm-1 (LVM, vg-lv) -> {dm-0 (CRYPT-PLAIN, x) -> nvme1n1 (disk, nvme); nvme2n1 (disk, nvme, instance store)}"
        );
        assert_eq!(lvm.layers().len(), 4);
        assert!(!lvm.all_ram());
    }
}
