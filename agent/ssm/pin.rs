//! Pinning the file-integrity manifest digest in Parameter Store: `check --stage bake
//! --publish-digest-parameter NAME` writes the digest the bake sealed (`PutParameter`, String,
//! overwrite), and `fim verify --expect-digest-parameter NAME` (or `check
//! --fim-expect-digest-parameter`) reads it back (`GetParameter`) as the digest the manifest must
//! have. The value is `sha256:HEX`, as `fim init` prints it.

use super::client::{ApiError, ParameterApi};

/// Read the pinned digest (`sha256:HEX` or `HEX`) from parameter `name`.
pub fn read(api: &mut dyn ParameterApi, name: &str) -> Result<String, ApiError> {
    api.get_parameter(name).map(|v| v.trim().to_string())
}

/// Publish `digest` (`sha256:HEX`) to parameter `name`, replacing an older value.
pub fn publish(
    api: &mut dyn ParameterApi,
    name: &str,
    digest: &str,
    baseline: &str,
) -> Result<(), ApiError> {
    api.put_parameter(
        name,
        digest,
        &format!("ec2-harden FIM manifest digest sealed at bake (baseline {baseline})"),
    )
}
