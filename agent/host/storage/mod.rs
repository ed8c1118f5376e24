//! Disk encryption as the host sees it: which block devices hold each mounted filesystem and swap
//! area, whether a dm-crypt layer sits between them and every disk, and what the LUKS headers of
//! those layers say. The `crypt` check family ([`crate::checks::crypt`]) judges this model; nothing
//! here has an opinion.
//!
//! * [`tables`]: mountinfo, `/proc/swaps`, fstab, crypttab and LVM backup parsers;
//! * [`blockdev`]: the sysfs walk from `MAJ:MIN` down to the disks, one [`blockdev::Layer`] per
//!   device;
//! * [`luks`]: the LUKS1/LUKS2 header parser (pure, no key needed);
//! * [`ebs`]: EC2's NVMe model/serial (EBS volume id, instance store);
//! * [`intent`]: what an image's configuration will set up at boot, where no live stack exists.
//!
//! [`Storage::gather`] reads the live model once per run: the visible mounts and active swaps with
//! the stack under each (and the headers in them), the active device-mapper mappings, and the
//! image's crypttab. Only a sysroot with both `/proc/self/mountinfo` and `/sys/dev/block` has a
//! live stack; anything else (an offline image), and the bake stage (the build instance's volumes
//! are not the fleet's), is judged by [`intent`].

pub mod blockdev;
pub mod ebs;
pub mod intent;
pub mod luks;
pub mod tables;

use std::collections::HashMap;

use blockdev::{ChainError, Layer, Walker};
use tables::{CrypttabEntry, DevNum, MountEntry, SwapEntry};

use crate::rule::Stage;
use crate::sysroot::Sysroot;

/// What kind of storage a filesystem type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsClass {
    /// On block devices (ext4, xfs, btrfs, vfat, …, and swap).
    Block,
    /// In memory (tmpfs, ramfs): nothing at rest.
    Memory,
    /// Kernel interfaces (proc, sysfs, cgroup, …).
    Pseudo,
    /// A union of other filesystems.
    Overlay,
    /// Storage on another machine (NFS/EFS, SMB, Ceph, …).
    Network,
    /// A FUSE daemon decides where the data goes.
    Fuse,
}

impl FsClass {
    /// Why a mount of this class is not applicable (never for [`FsClass::Block`]).
    pub fn reason(self, fstype: &str) -> String {
        match self {
            FsClass::Block => format!("{fstype} is on block devices"),
            FsClass::Memory => format!("{fstype} lives in memory: nothing of it is at rest"),
            FsClass::Pseudo => format!("{fstype} is a kernel interface, not storage"),
            FsClass::Overlay => format!(
                "{fstype}: its layers are directories of other filesystems, judged where those are mounted"
            ),
            FsClass::Network => format!(
                "{fstype} is a network filesystem: encryption at rest is the server's (EFS: a file system setting), in transit the mount's"
            ),
            FsClass::Fuse => format!("{fstype} is a FUSE filesystem: its daemon decides where the data goes"),
        }
    }
}

/// The class of a filesystem type as mountinfo or fstab name it.
pub fn fs_class(fstype: &str) -> FsClass {
    match fstype {
        // rootfs: the initramfs (a tmpfs or ramfs the kernel mounts first)
        "tmpfs" | "ramfs" | "devtmpfs" | "rootfs" => FsClass::Memory,
        "proc" | "sysfs" | "devpts" | "cgroup" | "cgroup2" | "securityfs" | "debugfs"
        | "tracefs" | "pstore" | "bpf" | "hugetlbfs" | "mqueue" | "configfs" | "fusectl"
        | "binfmt_misc" | "autofs" | "efivarfs" | "rpc_pipefs" | "nsfs" | "selinuxfs" | "nfsd"
        | "none" => FsClass::Pseudo,
        "overlay" | "aufs" => FsClass::Overlay,
        "nfs" | "nfs4" | "cifs" | "smb3" | "smbfs" | "ceph" | "glusterfs" | "9p" | "lustre"
        | "efs" | "afs" | "fuse.sshfs" | "fuse.s3fs" | "fuse.mount-s3" | "fuse.rclone"
        | "fuse.glusterfs" | "fuse.cephfs" => FsClass::Network,
        t if t.starts_with("fuse") => FsClass::Fuse,
        _ => FsClass::Block,
    }
}

/// What a mount (or a swap area) is stored on.
#[derive(Debug, Clone)]
pub enum Backing {
    /// Not on block devices at all (memory, kernel, overlay, network, FUSE).
    NotBlock(FsClass),
    /// The device stacks under it: one for most filesystems, one per device for multi-device btrfs.
    Devices(Vec<Result<Layer, ChainError>>),
    /// Block storage whose devices could not be found.
    Unresolved(String),
}

/// One active swap area and what it is on.
#[derive(Debug, Clone)]
pub struct Swap {
    pub entry: SwapEntry,
    /// For a swap file, the mount point of the filesystem holding it.
    pub on_mount: Option<String>,
    pub backing: Backing,
}

/// An active device-mapper mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// `/dev/mapper/<name>`.
    pub name: String,
    /// Kernel name (`dm-0`).
    pub kernel: String,
    pub uuid: String,
}

/// The live storage model (see the module docs).
#[derive(Debug, Clone)]
pub struct Storage {
    /// Visible mounts with what each is on.
    pub mounts: Vec<(MountEntry, Backing)>,
    pub swaps: Vec<Swap>,
    pub mappings: Vec<Mapping>,
    pub crypttab: Vec<CrypttabEntry>,
}

/// Where the `crypt` rules get their facts.
#[derive(Debug, Clone)]
pub enum Source {
    Live(Storage),
    /// No live stack; `reason` says why (offline image, stage bake).
    Boot {
        reason: String,
        config: intent::BootConfig,
    },
}

pub const MOUNTINFO: &str = "/proc/self/mountinfo";
pub const SWAPS: &str = "/proc/swaps";

impl Source {
    /// Gather once per run (see the module docs); errors name the file that could not be read.
    pub fn gather(sysroot: &Sysroot, stage: Stage) -> Result<Source, String> {
        let has_sys = sysroot.metadata("/sys/dev/block").is_ok_and(|m| m.is_dir());
        let has_mountinfo = sysroot.exists(MOUNTINFO);
        let reason = if stage == Stage::Bake {
            Some("stage bake: the build instance's volumes are not the ones the image's instances will have, so the live device stack is not applicable".to_string())
        } else if !has_sys || !has_mountinfo {
            let missing = match (has_sys, has_mountinfo) {
                (false, false) => "/sys/dev/block and /proc/self/mountinfo",
                (false, true) => "/sys/dev/block",
                _ => "/proc/self/mountinfo",
            };
            Some(format!(
                "offline image: the sysroot has no {missing}, so the live device stack is not applicable"
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Ok(Source::Boot {
                reason,
                config: intent::BootConfig::read(sysroot)?,
            });
        }
        Storage::gather(sysroot).map(Source::Live)
    }
}

impl Storage {
    pub fn gather(sysroot: &Sysroot) -> Result<Storage, String> {
        let mountinfo = sysroot.read(MOUNTINFO).map_err(|e| e.to_string())?;
        let mountinfo = String::from_utf8_lossy(&mountinfo);
        // a chroot with the scanner's /proc: its mount points carry the root's path
        let host = sysroot.root().display().to_string();
        let prefix = if sysroot.is_host_root()
            || !tables::parse_mountinfo(&mountinfo, "")
                .iter()
                .any(|m| m.point == host)
        {
            String::new()
        } else {
            host
        };
        let entries = tables::parse_mountinfo(&mountinfo, &prefix);
        let walker = Walker::new(sysroot);
        let mappings = read_mappings(sysroot)?;
        // bind mounts and btrfs subvolumes share devices: each stack (and header) is read once
        let mut walked: HashMap<DevNum, Backing> = HashMap::new();
        let mut mounts = Vec::new();
        for m in entries {
            let backing = match walked.get(&m.dev) {
                Some(b) if m.dev.major != 0 => b.clone(),
                _ => {
                    let b = mount_backing(sysroot, &walker, &mappings, &m);
                    if m.dev.major != 0 {
                        walked.insert(m.dev, b.clone());
                    }
                    b
                }
            };
            mounts.push((m, backing));
        }
        let swaps_text = match sysroot.read(SWAPS) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.is_not_found() => String::new(),
            Err(e) => return Err(e.to_string()),
        };
        let mut swaps = Vec::new();
        for entry in tables::parse_swaps(&swaps_text) {
            let (on_mount, backing) = if entry.kind == "file" {
                let held: Vec<&MountEntry> = mounts
                    .iter()
                    .map(|(m, _)| m)
                    .filter(|m| fs_class(&m.fstype) == FsClass::Block)
                    .collect();
                match tables::holder(&held, &entry.path, |m| &m.point) {
                    Some(m) => {
                        let backing = mounts
                            .iter()
                            .find(|(x, _)| x.point == m.point)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_else(|| Backing::Unresolved("no mount".into()));
                        (Some(m.point.clone()), backing)
                    }
                    None => (
                        None,
                        Backing::Unresolved(format!(
                            "no mounted filesystem holds swap file {}",
                            entry.path
                        )),
                    ),
                }
            } else {
                let backing = match device_name(sysroot, &mappings, &entry.path) {
                    Ok(name) => Backing::Devices(vec![walker.walk_name(&name, 0)]),
                    Err(e) => Backing::Unresolved(e),
                };
                (None, backing)
            };
            swaps.push(Swap {
                entry,
                on_mount,
                backing,
            });
        }
        let crypttab = match sysroot.read("/etc/crypttab") {
            Ok(b) => tables::parse_crypttab(&String::from_utf8_lossy(&b)),
            Err(e) if e.is_not_found() => vec![],
            Err(e) => return Err(e.to_string()),
        };
        Ok(Storage {
            mounts,
            swaps,
            mappings,
            crypttab,
        })
    }

    /// Every dm-crypt layer under any mount or swap, once each (by kernel name), with the first
    /// mount point or swap path found above it.
    pub fn crypt_layers(&self) -> Vec<(&Layer, String)> {
        let mut out: Vec<(&Layer, String)> = Vec::new();
        let stacks = self.mounts.iter().map(|(m, b)| (m.point.clone(), b)).chain(
            self.swaps
                .iter()
                .map(|s| (format!("swap {}", s.entry.path), &s.backing)),
        );
        for (what, backing) in stacks {
            let Backing::Devices(devs) = backing else {
                continue;
            };
            for layer in devs.iter().flatten() {
                for l in layer.layers() {
                    if matches!(l.kind, blockdev::LayerKind::Crypt { .. })
                        && !out.iter().any(|(o, _)| o.name == l.name)
                    {
                        out.push((l, what.clone()));
                    }
                }
            }
        }
        out
    }
}

/// The active device-mapper devices (`/sys/class/block/dm-*`), by mapping name.
fn read_mappings(sysroot: &Sysroot) -> Result<Vec<Mapping>, String> {
    let mut out = Vec::new();
    for dir in sysroot
        .glob("/sys/class/block/dm-*")
        .map_err(|e| e.to_string())?
    {
        let read = |attr: &str| {
            sysroot
                .read(dir.join(attr))
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        };
        let kernel = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match (read("dm/name"), read("dm/uuid")) {
            (Ok(name), Ok(uuid)) => out.push(Mapping { name, kernel, uuid }),
            (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
        }
    }
    Ok(out)
}

/// The kernel name of the block device a path such as `/dev/vda2`, `/dev/mapper/x`,
/// `/dev/disk/by-id/dm-name-x` or `/dev/dm-1` names.
fn device_name(sysroot: &Sysroot, mappings: &[Mapping], path: &str) -> Result<String, String> {
    if let Some(name) = intent::mapper_name(path) {
        return mappings
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.kernel.clone())
            .ok_or_else(|| format!("{path}: no active device-mapper mapping `{name}`"));
    }
    if let Some(name) = path.strip_prefix("/dev/").filter(|n| !n.contains('/')) {
        if sysroot.exists(format!("/sys/class/block/{name}")) {
            return Ok(name.to_string());
        }
    }
    // a udev link (/dev/disk/by-uuid/…, /dev/root): the device node's number
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    match sysroot.metadata(path) {
        Ok(md) if md.file_type().is_block_device() => {
            let dev = DevNum {
                major: nix::sys::stat::major(md.rdev()),
                minor: nix::sys::stat::minor(md.rdev()),
            };
            let target = sysroot
                .read_link(format!("/sys/dev/block/{dev}"))
                .map_err(|e| e.to_string())?;
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{path}: no block device {dev} in sysfs"))
        }
        Ok(_) => Err(format!("{path} is not a block device")),
        Err(e) => Err(format!("{path}: cannot find its block device ({e})")),
    }
}

/// What a visible mount is stored on.
fn mount_backing(
    sysroot: &Sysroot,
    walker: &Walker<'_>,
    mappings: &[Mapping],
    m: &MountEntry,
) -> Backing {
    let class = fs_class(&m.fstype);
    if class != FsClass::Block {
        return Backing::NotBlock(class);
    }
    if m.dev.major != 0 {
        return Backing::Devices(vec![walker.walk_dev(m.dev)]);
    }
    if m.fstype != "btrfs" {
        return Backing::Unresolved(format!(
            "device {} is no block device the kernel names, and the mount source `{}` is not one",
            m.dev, m.source
        ));
    }
    // btrfs reports an anonymous device number: its devices come from the mount source and, for
    // a multi-device filesystem, /sys/fs/btrfs/<fsid>/devices/
    let first = match device_name(sysroot, mappings, &m.source) {
        Ok(n) => n,
        Err(e) => return Backing::Unresolved(format!("btrfs source: {e}")),
    };
    let mut names = vec![first.clone()];
    if let Ok(dirs) = sysroot.glob("/sys/fs/btrfs/*/devices/") {
        for dir in dirs {
            let Ok(list) = sysroot.read_dir(&dir) else {
                continue;
            };
            let devs: Vec<String> = list
                .iter()
                .map(|e| e.name.to_string_lossy().into_owned())
                .collect();
            if devs.contains(&first) {
                names = devs;
                break;
            }
        }
    }
    Backing::Devices(names.iter().map(|n| walker.walk_name(n, 0)).collect())
}
