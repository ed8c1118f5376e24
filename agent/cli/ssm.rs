//! The command line's side of SSM: where requests go and how long delivery may take
//! ([`SsmArgs`]), `check --report ssm`, `report flush`, and the FIM digest pinned in Parameter
//! Store. Delivery itself (spool, retries, payloads) is `ec2_harden::ssm`; this maps its results
//! to messages and exit codes.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use ec2_harden::fim;
use ec2_harden::host::imds;
use ec2_harden::report::Report;

use super::{out, CliResult, Exit, Failure};

/// Where SSM requests go and how long delivery may take (check --report ssm, report flush,
/// Parameter Store pinning).
#[derive(Debug, Args)]
pub struct SsmArgs {
    /// The AWS region for SSM; default AWS_SSM_REGION_NAME, else IMDS, else the SDK's chain
    /// (AWS_REGION, profile). Endpoint overrides: AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Where undelivered SSM reports wait (mode 0700).
    #[arg(long, value_name = "DIR", env = "EC2_HARDEN_SPOOL_DIR", default_value = ec2_harden::ssm::spool::DEFAULT_DIR)]
    pub spool_dir: PathBuf,
    /// Give up delivering after this many seconds (what is left stays spooled). Keep it well
    /// under the Run Command / State Manager timeout, which SIGKILLs the whole process group.
    #[arg(long, value_name = "SECONDS", default_value = "60")]
    pub report_deadline: u64,
    /// The SSM agent's state directory (custom inventory goes to ID/inventory/custom).
    #[arg(long, value_name = "DIR", default_value = ec2_harden::ssm::DEFAULT_AGENT_DIR, hide = true)]
    pub ssm_agent_dir: PathBuf,
}

impl SsmArgs {
    fn settings(&self) -> ec2_harden::ssm::Settings {
        ec2_harden::ssm::Settings {
            spool_dir: self.spool_dir.clone(),
            agent_dir: self.ssm_agent_dir.clone(),
            deadline: std::time::Duration::from_secs(self.report_deadline),
            ..ec2_harden::ssm::Settings::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Deliver reports spooled by earlier runs whose delivery failed, oldest first.
    Flush(FlushArgs),
}

#[derive(Debug, Args)]
pub struct FlushArgs {
    #[command(flatten)]
    pub ssm: SsmArgs,
}

/// The real SSM client for a region, boxed for the delivery loop.
fn ssm_client(
    region: Option<&str>,
) -> Result<Box<dyn ec2_harden::ssm::client::SsmApi>, ec2_harden::ssm::client::ApiError> {
    Ok(Box::new(ec2_harden::ssm::client::SdkSsm::new(region)?))
}

fn ssm_failure(e: ec2_harden::ssm::SsmError) -> Failure {
    match e {
        ec2_harden::ssm::SsmError::NoInstanceId { .. }
        | ec2_harden::ssm::SsmError::BadInstanceId { .. } => Failure::config(e),
        _ => Failure::internal(e),
    }
}

/// What a delivery did, as a failure when something was left behind or refused.
fn delivery_result(
    d: &ec2_harden::ssm::deliver::Delivery,
    spool: &Path,
    verb: &str,
) -> Result<(), Failure> {
    tracing::info!(
        delivered = d.delivered.len(),
        stale = d.stale.len(),
        rejected = d.rejected.len(),
        pending = d.pending,
        "{verb}"
    );
    if let Some((key, why)) = d.rejected.first() {
        return Err(Failure::internal(anyhow::anyhow!(
            "SSM refused {} spooled report{} (first: {key}: {why}); kept in {}/rejected for inspection",
            d.rejected.len(),
            if d.rejected.len() == 1 { "" } else { "s" },
            spool.display()
        )));
    }
    if d.pending > 0 {
        return Err(Failure::internal(anyhow::anyhow!(
            "{} report{} not delivered yet, kept in {}: {}; `ec2-harden report flush` or the next run delivers {}",
            d.pending,
            if d.pending == 1 { "" } else { "s" },
            spool.display(),
            d.stopped.as_deref().unwrap_or("stopped"),
            if d.pending == 1 { "it" } else { "them" }
        )));
    }
    Ok(())
}

/// `check --report ssm`: spool the report, then deliver it and anything older.
pub fn report_ssm(
    report: &Report,
    instance_id: Option<&str>,
    ssm: &SsmArgs,
) -> Result<(), Failure> {
    let target = ec2_harden::ssm::target(
        instance_id,
        ssm.region.as_deref(),
        report.host.imds.as_ref(),
        || {
            let settings = imds::ImdsSettings::from_env().unwrap_or_default();
            imds::gather(&settings)
        },
    )
    .map_err(ssm_failure)?;
    let settings = ssm.settings();
    let d = ec2_harden::ssm::report(report, &target, &settings, ssm_client).map_err(ssm_failure)?;
    delivery_result(&d, &settings.spool_dir, "ssm report delivered")
}

pub fn report_flush(args: FlushArgs) -> CliResult {
    let settings = args.ssm.settings();
    let d = ec2_harden::ssm::flush(&settings, args.ssm.region.as_deref(), ssm_client)
        .map_err(ssm_failure)?;
    out(&format!(
        "report flush: {} delivered, {} stale dropped, {} rejected, {} still spooled in {}\n",
        d.delivered.len(),
        d.stale.len(),
        d.rejected.len(),
        d.pending,
        settings.spool_dir.display()
    ))?;
    delivery_result(&d, &settings.spool_dir, "report flush finished")?;
    Ok(Exit::Clean)
}

/// The SSM client for Parameter Store, with errors that name the endpoint.
fn parameter_client(region: Option<&str>) -> Result<ec2_harden::ssm::client::SdkSsm, Failure> {
    ec2_harden::ssm::client::SdkSsm::new(region).map_err(|e| Failure::config(anyhow::Error::new(e)))
}

/// `--fim-expect-digest-parameter` / `--expect-digest-parameter`: the pinned digest from SSM.
pub fn parameter_digest(name: &str, region: Option<&str>) -> Result<[u8; 32], Failure> {
    use ec2_harden::ssm::client::{ApiError, SsmApi};
    let region = ec2_harden::ssm::region(region, None);
    let mut client = parameter_client(region.as_deref())?;
    let endpoint = client.endpoint();
    let value = ec2_harden::ssm::pin::read(&mut client, name).map_err(|e| {
        let blocked = matches!(e, ApiError::Blocked { .. } | ApiError::Rejected { .. });
        let err = anyhow::anyhow!(
            "reading the pinned FIM digest from SSM parameter {name} at {endpoint}: {e}"
        );
        if blocked {
            Failure::config(err)
        } else {
            Failure::internal(err)
        }
    })?;
    fim::parse_digest(&value).map_err(|e| {
        Failure::config(anyhow::Error::new(e).context(format!("SSM parameter {name}")))
    })
}

/// `--publish-digest-parameter`: write the digest the bake sealed.
pub fn publish_digest(report: &Report, name: &str, region: Option<&str>) -> Result<(), Failure> {
    use ec2_harden::ssm::client::SsmApi;
    let Some(digest) = ec2_harden::ssm::payload::fim_manifest_digest(report) else {
        return Err(Failure::internal(anyhow::anyhow!(
            "--publish-digest-parameter {name}: this run sealed no FIM manifest (is the fim family skipped or failing?)"
        )));
    };
    let region = ec2_harden::ssm::region(region, None);
    let mut client = parameter_client(region.as_deref())?;
    let endpoint = client.endpoint();
    ec2_harden::ssm::pin::publish(&mut client, name, &digest, &report.baseline.name).map_err(
        |e| {
            Failure::internal(anyhow::anyhow!(
                "publishing the FIM digest to SSM parameter {name} at {endpoint}: {e}"
            ))
        },
    )?;
    tracing::info!(parameter = name, %digest, "FIM manifest digest published");
    Ok(())
}
