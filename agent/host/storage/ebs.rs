//! What an EC2 NVMe disk is, from the two attributes Nitro instances expose in sysfs
//! (`/sys/block/nvme*/device/model` and `serial`): an EBS volume (model `Amazon Elastic Block
//! Store`, serial = the volume id without its dash, `vol0123456789abcdef0`) or an instance-store
//! volume (`Amazon EC2 NVMe Instance Storage`).
//!
//! What the guest can and cannot know: EBS encryption happens outside the instance, so from inside
//! the guest an encrypted and an unencrypted EBS volume look the same — only `ec2:DescribeVolumes`
//! (`Encrypted`, `KmsKeyId`) tells. Nothing here ever claims either. NVMe instance-store volumes are
//! always encrypted by the instance's hardware (XTS-AES-256, keys destroyed when the instance stops
//! or terminates), which the EC2 documentation states for every NVMe instance store.

use serde::Serialize;

/// The model string of an EBS volume attached through NVMe.
pub const EBS_MODEL: &str = "Amazon Elastic Block Store";
/// The model string of an NVMe instance-store volume.
pub const INSTANCE_STORE_MODEL: &str = "Amazon EC2 NVMe Instance Storage";

/// An NVMe disk as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NvmeDisk {
    /// An EBS volume; `volume_id` is `vol-…` when the serial has the expected form.
    Ebs {
        volume_id: Option<String>,
        serial: String,
    },
    /// An instance-store volume (hardware-encrypted).
    InstanceStore,
    /// Any other NVMe disk (not EC2, or a model this agent does not know).
    Other { model: String },
}

impl NvmeDisk {
    /// Classify from the sysfs `model` and `serial` attributes (padded with spaces by the kernel).
    pub fn classify(model: &str, serial: &str) -> NvmeDisk {
        let model = model.trim();
        let serial = serial.trim();
        if model == EBS_MODEL {
            NvmeDisk::Ebs {
                volume_id: volume_id(serial),
                serial: serial.to_string(),
            }
        } else if model == INSTANCE_STORE_MODEL {
            NvmeDisk::InstanceStore
        } else {
            NvmeDisk::Other {
                model: model.to_string(),
            }
        }
    }

    /// The sentence the evidence carries for this disk (`name` is the kernel name, `nvme1n1`).
    pub fn describe(&self, name: &str) -> String {
        match self {
            NvmeDisk::Ebs {
                volume_id: Some(id),
                ..
            } => format!(
                "{name} is EBS volume {id}: EBS encryption is not visible from inside the instance; confirm it with ec2:DescribeVolumes (aws ec2 describe-volumes --volume-ids {id} --query 'Volumes[0].[Encrypted,KmsKeyId]')"
            ),
            NvmeDisk::Ebs { serial, .. } => format!(
                "{name} is an EBS volume (serial `{serial}` is not a volume id): EBS encryption is not visible from inside the instance; confirm it with ec2:DescribeVolumes"
            ),
            NvmeDisk::InstanceStore => format!(
                "{name} is an EC2 NVMe instance-store volume: always encrypted by the instance's hardware (XTS-AES-256, keys destroyed when the instance stops or terminates)"
            ),
            NvmeDisk::Other { model } => format!("{name} is an NVMe disk (model `{model}`)"),
        }
    }
}

/// `vol0123456789abcdef0` → `vol-0123456789abcdef0` (8 or 17 hex digits); already dashed ids are
/// kept; anything else is not a volume id.
pub fn volume_id(serial: &str) -> Option<String> {
    let hex = serial
        .strip_prefix("vol-")
        .or_else(|| serial.strip_prefix("vol"))?;
    let ok = matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| format!("vol-{}", hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ebs_serials_become_volume_ids() {
        assert_eq!(
            volume_id("vol0123456789abcdef0").as_deref(),
            Some("vol-0123456789abcdef0")
        );
        assert_eq!(volume_id("vol-0123abcd").as_deref(), Some("vol-0123abcd"));
        assert_eq!(volume_id("vol012"), None);
        assert_eq!(volume_id("AWS1234567890ABCDEF"), None);
        assert_eq!(volume_id("volume0123456789abcde"), None);
    }

    #[test]
    fn models_classify_with_kernel_padding() {
        let ebs = NvmeDisk::classify(
            "Amazon Elastic Block Store              \n",
            "vol0abcdef0123456789 \n",
        );
        assert_eq!(
            ebs,
            NvmeDisk::Ebs {
                volume_id: Some("vol-0abcdef0123456789".into()),
                serial: "vol0abcdef0123456789".into()
            }
        );
        assert!(ebs.describe("nvme1n1").contains("ec2:DescribeVolumes"));
        assert!(!ebs.describe("nvme1n1").contains("is encrypted"));
        assert_eq!(
            NvmeDisk::classify(
                "Amazon EC2 NVMe Instance Storage        ",
                "AWS22B5F8D5A1B3C2D4E"
            ),
            NvmeDisk::InstanceStore
        );
        assert_eq!(
            NvmeDisk::classify("QEMU NVMe Ctrl", "deadbeef"),
            NvmeDisk::Other {
                model: "QEMU NVMe Ctrl".into()
            }
        );
    }
}
