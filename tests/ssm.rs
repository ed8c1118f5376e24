//! `check --report ssm`, `report flush` and the Parameter Store pinning, end to end: the agent (the
//! real aws-sdk-ssm client, SigV4-signed) talks to the local SSM endpoint that holds every request
//! to botocore's SSM model (tests/ssm/endpoint.py, started by tests/common/ssm.rs), and the real
//! AWS CLI reads the results back, which must match the agent's own JSON report item for item.
//! Faults injected at the endpoint (HTTP 500, throttling, connection resets, a response that never
//! comes, the agent SIGKILLed mid-delivery) must cost nothing: once they clear, one `report flush`
//! or run delivers every spooled report, oldest first, nothing lost, nothing sent out of order.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::ssm::{Fault, SsmEndpoint, REGION};
use serde_json::Value;

const NODE: &str = "i-0a1b2c3d4e5f60718";
const COMMAND_ID: &str = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";

/// One agent host: a fixture root, a spool, an SSM-agent state dir and a report file.
struct Host {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        Host {
            root: common::fixture("debian-12-hardened"),
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &str {
        self.root.path().to_str().unwrap()
    }

    fn spool(&self) -> PathBuf {
        self.state.path().join("spool")
    }

    fn report_path(&self) -> PathBuf {
        self.state.path().join("report.json")
    }

    /// `ec2-harden ARGS` pointed at `ep` (the SDK's AWS_ENDPOINT_URL_SSM), with this host's spool.
    fn agent(&self, ep: &SsmEndpoint, args: &[&str]) -> Command {
        let mut cmd = common::bin();
        ep.apply_env(&mut cmd)
            .args(args)
            .env("EC2_HARDEN_SPOOL_DIR", self.spool())
            .env_remove("AWS_SSM_INSTANCE_ID")
            .env_remove("AWS_SSM_REGION_NAME")
            .env_remove("SSM_COMMAND_ID")
            .stdin(Stdio::null());
        cmd
    }

    /// `check --report ssm` of the fixture root, the JSON report written beside the spool.
    fn check(&self, ep: &SsmEndpoint, extra: &[&str]) -> Output {
        let report = self.report_path();
        let mut args = vec![
            "check",
            "--root",
            self.root(),
            "--skip",
            "fim",
            "--format",
            "json",
            "--output",
            report.to_str().unwrap(),
            "--report",
            "ssm",
            "--fail-on",
            "never",
        ];
        args.extend_from_slice(extra);
        run(&mut self.agent(ep, &args))
    }

    /// `check --only ssh --report ssm --instance-id NODE EXTRA` of the fixture root, as a command
    /// whose environment the caller adjusts.
    fn check_ssh(&self, ep: &SsmEndpoint, node: &str, extra: &[&str]) -> Command {
        let mut args = vec![
            "check",
            "--root",
            self.root(),
            "--only",
            "ssh",
            "--report",
            "ssm",
            "--instance-id",
            node,
        ];
        args.extend_from_slice(extra);
        self.agent(ep, &args)
    }

    fn report(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.report_path()).unwrap()).unwrap()
    }

    /// Spooled (undelivered) entries.
    fn spooled(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.spool())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn flush(&self, ep: &SsmEndpoint, extra: &[&str]) -> Output {
        let mut args = vec!["report", "flush"];
        args.extend_from_slice(extra);
        run(&mut self.agent(ep, &args))
    }
}

/// Run with a hang guard (the agent has its own deadline; this only keeps a bug from stalling CI).
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ec2-harden");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("ec2-harden did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every compliance item of `Custom:Ec2Harden` for `node`, read back with the AWS CLI (which
/// follows NextToken itself), by Id.
fn compliance_items(ep: &SsmEndpoint, node: &str) -> BTreeMap<String, Value> {
    let answer = ep.aws_json(&[
        "ssm",
        "list-compliance-items",
        "--resource-ids",
        node,
        "--resource-types",
        "ManagedInstance",
        "--filters",
        "Key=ComplianceType,Values=Custom:Ec2Harden,Type=EQUAL",
    ]);
    answer["ComplianceItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["Id"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

fn inventory_summary(ep: &SsmEndpoint, node: &str) -> Value {
    let answer = ep.aws_json(&[
        "ssm",
        "list-inventory-entries",
        "--instance-id",
        node,
        "--type-name",
        "Custom:Ec2HardenSummary",
    ]);
    let entries = answer["Entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{answer}");
    let mut summary = entries[0].clone();
    summary["CaptureTime"] = answer["CaptureTime"].clone();
    summary
}

fn severity(s: &str) -> &'static str {
    match s {
        "critical" => "CRITICAL",
        "high" => "HIGH",
        "medium" => "MEDIUM",
        "low" => "LOW",
        "info" => "INFORMATIONAL",
        other => panic!("severity {other}"),
    }
}

/// The stored items equal the report, rule for rule.
fn assert_matches_report(items: &BTreeMap<String, Value>, report: &Value) {
    let results = report["results"].as_array().unwrap();
    assert_eq!(items.len(), results.len(), "one item per rule");
    for r in results {
        let id = r["id"].as_str().unwrap();
        let item = items
            .get(id)
            .unwrap_or_else(|| panic!("no compliance item {id}"));
        let status = r["status"].as_str().unwrap();
        let compliant = match status {
            "pass" | "not-applicable" => true,
            "fail" => r.get("waiver").is_some(),
            "error" => false,
            other => panic!("status {other}"),
        };
        assert_eq!(
            item["Status"],
            if compliant {
                "COMPLIANT"
            } else {
                "NON_COMPLIANT"
            },
            "{id}: {item}"
        );
        assert_eq!(
            item["Severity"],
            severity(r["severity"].as_str().unwrap()),
            "{id}"
        );
        assert_eq!(item["Title"], r["title"], "{id}");
        assert_eq!(item["Details"]["Result"], status, "{id}");
        assert_eq!(item["Details"]["Family"], r["family"], "{id}");
        if status == "not-applicable" {
            assert_eq!(item["Details"]["Reason"], r["reason"], "{id}");
        }
        assert_eq!(item["ComplianceType"], "Custom:Ec2Harden");
        assert_eq!(item["ResourceType"], "ManagedInstance");
    }
}

fn stored(ep: &SsmEndpoint, operation: &str) -> Vec<Value> {
    ep.requests(operation)
        .into_iter()
        .filter(|r| r["outcome"] == "stored")
        .collect()
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn a_report_lands_in_compliance_and_inventory_as_the_aws_cli_reads_it() {
    let ep = SsmEndpoint::start_with(false, true);
    let host = Host::new();
    // A seeded fault so there is something NON_COMPLIANT to see.
    common::apply(
        host.root.path(),
        "write /etc/ssh/sshd_config.d/10-debug.conf PermitRootLogin yes\\n",
    );
    let agent_dir = host.state.path().join("amazon-ssm");
    std::fs::create_dir_all(agent_dir.join(NODE)).unwrap();
    let out = run(host
        .agent(
            &ep,
            &[
                "check",
                "--root",
                host.root(),
                "--skip",
                "fim",
                "--format",
                "json",
                "--output",
                host.report_path().to_str().unwrap(),
                "--report",
                "ssm",
                "--ssm-agent-dir",
                agent_dir.to_str().unwrap(),
            ],
        )
        // as SSM Run Command sets them (the region variable wins over AWS_REGION)
        .env("AWS_SSM_INSTANCE_ID", NODE)
        .env("AWS_SSM_REGION_NAME", REGION)
        .env("AWS_REGION", "eu-west-3")
        .env("SSM_COMMAND_ID", COMMAND_ID));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = host.report();
    assert_eq!(common::status(&report, "ssh-permit-root-login-no"), "fail");

    let items = compliance_items(&ep, NODE);
    assert_matches_report(&items, &report);
    let root_login = &items["ssh-permit-root-login-no"];
    assert_eq!(root_login["Status"], "NON_COMPLIANT");
    assert!(
        root_login["Details"]["Evidence"]
            .as_str()
            .unwrap()
            .contains("permitrootlogin is set"),
        "{root_login}"
    );
    assert_eq!(root_login["ExecutionSummary"]["ExecutionId"], COMMAND_ID);
    assert_eq!(root_login["ExecutionSummary"]["ExecutionType"], "Command");

    // The per-resource summary counts what the report counts.
    let summaries = ep.aws_json(&["ssm", "list-resource-compliance-summaries"]);
    let ours: Vec<&Value> = summaries["ResourceComplianceSummaryItems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ComplianceType"] == "Custom:Ec2Harden")
        .collect();
    assert_eq!(ours.len(), 1, "{summaries}");
    let s = ours[0];
    assert_eq!(s["ResourceId"], NODE);
    assert_eq!(s["Status"], "NON_COMPLIANT");
    let non_compliant = items
        .values()
        .filter(|i| i["Status"] == "NON_COMPLIANT")
        .count();
    assert_eq!(
        s["NonCompliantSummary"]["NonCompliantCount"],
        non_compliant as u64
    );
    assert_eq!(
        s["CompliantSummary"]["CompliantCount"],
        (items.len() - non_compliant) as u64
    );
    #[allow(clippy::print_stdout)] // shown with --nocapture: what a user sees in SSM
    {
        println!("aws ssm list-resource-compliance-summaries:\n{summaries:#}");
    }

    // The inventory summary: strings only, the report's counts and baseline.
    let inv = inventory_summary(&ep, NODE);
    assert_eq!(inv["Rules"], report["totals"]["rules"].to_string());
    assert_eq!(
        inv["Fail"],
        report["totals"]["by_status"]["fail"].to_string()
    );
    assert_eq!(inv["BaselineName"], report["baseline"]["name"]);
    assert_eq!(inv["BaselineDigest"], report["baseline"]["digest"]);
    assert_eq!(inv["Stage"], "run");
    assert!(inv.as_object().unwrap().len() <= 51);

    // The SSM agent's custom inventory file, for AWS-GatherSoftwareInventory.
    let file = agent_dir
        .join(NODE)
        .join("inventory/custom/Ec2HardenSummary.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["TypeName"], "Custom:Ec2HardenSummary");
    assert_eq!(doc["SchemaVersion"], "1.0");
    assert_eq!(doc["Content"]["Rules"], inv["Rules"]);
    assert!(doc["Content"]
        .as_object()
        .unwrap()
        .values()
        .all(Value::is_string));

    // Delivered, so nothing is left in the spool, and each call was signed and model-valid once.
    assert!(host.spooled().is_empty(), "{:?}", host.spooled());
    assert_eq!(stored(&ep, "PutComplianceItems").len(), 1);
    assert_eq!(stored(&ep, "PutInventory").len(), 1);
    let sent = &ep.requests("PutComplianceItems")[0]["body"];
    assert_eq!(sent["UploadType"], "COMPLETE");
    assert_eq!(
        sent["Items"].as_array().unwrap().len(),
        report["results"].as_array().unwrap().len()
    );
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn an_unchanged_report_is_a_no_op_and_a_changed_one_replaces_every_item() {
    let ep = SsmEndpoint::start_with(false, true);
    let host = Host::new();
    let flags = ["--instance-id", NODE, "--region", REGION];
    let out = host.check(&ep, &flags);
    assert!(out.status.success(), "{}", text(&out));
    let first = compliance_items(&ep, NODE);
    // Same tree, same results: the content hashes make both calls no-ops upstream.
    let out = host.check(&ep, &flags);
    assert!(out.status.success(), "{}", text(&out));
    let calls = ep.requests("PutComplianceItems");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["outcome"], "no-op", "{}", calls[1]);
    assert_eq!(ep.requests("PutInventory")[1]["outcome"], "no-op");
    assert_eq!(compliance_items(&ep, NODE), first);

    // A fault appears: COMPLETE upload, every item sent again, the stored set is the new report.
    common::apply(
        host.root.path(),
        "write /etc/ssh/sshd_config.d/10-debug.conf PermitRootLogin yes\\n",
    );
    let out = host.check(&ep, &flags);
    assert!(out.status.success(), "{}", text(&out));
    let items = compliance_items(&ep, NODE);
    assert_matches_report(&items, &host.report());
    assert_eq!(items["ssh-permit-root-login-no"]["Status"], "NON_COMPLIANT");
    assert_eq!(stored(&ep, "PutComplianceItems").len(), 2);
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn the_generic_endpoint_variable_works_too() {
    let ep = SsmEndpoint::start_with(false, true);
    let host = Host::new();
    let out = run(host
        .check_ssh(&ep, "mi-0123456789abcdef0", &[])
        .env_remove("AWS_ENDPOINT_URL_SSM")
        .env("AWS_ENDPOINT_URL", ep.url()));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(compliance_items(&ep, "mi-0123456789abcdef0").len(), {
        // --only ssh: the ssh family's rules only
        let (_, report, _) = common::check_json(host.root.path(), &["--only", "ssh"]);
        report["results"].as_array().unwrap().len()
    });
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn transient_faults_are_retried_within_the_run() {
    let ep = SsmEndpoint::start_with(false, true);
    let host = Host::new();
    ep.fault("PutComplianceItems", Fault::Http500, 1);
    ep.fault("PutComplianceItems", Fault::Throttle, 1);
    ep.fault("PutComplianceItems", Fault::Reset, 1);
    ep.fault("PutInventory", Fault::Throttle, 2);
    let out = host.check(&ep, &["--instance-id", NODE, "--region", REGION]);
    assert!(out.status.success(), "{}", text(&out));
    let outcomes: Vec<String> = ep
        .requests("PutComplianceItems")
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["http500", "throttle", "reset", "stored"]);
    let outcomes: Vec<String> = ep
        .requests("PutInventory")
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["throttle", "throttle", "stored"]);
    assert_matches_report(&compliance_items(&ep, NODE), &host.report());
    assert!(host.spooled().is_empty());
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn a_response_that_never_comes_leaves_the_report_spooled_for_the_flush() {
    let ep = SsmEndpoint::start_with(false, true);
    let host = Host::new();
    ep.fault("PutComplianceItems", Fault::Hang, 1);
    let started = Instant::now();
    let out = host.check(
        &ep,
        &[
            "--instance-id",
            NODE,
            "--region",
            REGION,
            "--report-deadline",
            "4",
        ],
    );
    let took = started.elapsed();
    // Exit 3: the audit ran and printed, the delivery did not finish and says what to do.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not delivered yet") && stderr.contains("report flush"),
        "{stderr}"
    );
    assert!(stderr.contains(ep.url()), "the endpoint is named: {stderr}");
    assert!(
        took < Duration::from_secs(60),
        "the deadline held: {took:?}"
    );
    assert_eq!(host.spooled().len(), 1);
    assert!(stored(&ep, "PutComplianceItems").is_empty());

    let out = host.flush(&ep, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("report flush: 1 delivered"),
        "{}",
        text(&out)
    );
    assert!(host.spooled().is_empty());
    assert_matches_report(&compliance_items(&ep, NODE), &host.report());
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn an_outage_spools_every_run_and_one_flush_delivers_them_oldest_first() {
    let ep = SsmEndpoint::start_with(false, true);
    let host = Host::new();
    let flags = [
        "--instance-id",
        NODE,
        "--region",
        REGION,
        "--report-deadline",
        "2",
    ];
    ep.fault("PutComplianceItems", Fault::Http500, 10_000);
    let out = host.check(&ep, &flags);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let older = host.report();
    // The host changes during the outage; the second run is spooled behind the first.
    common::apply(
        host.root.path(),
        "write /etc/ssh/sshd_config.d/10-debug.conf PermitRootLogin yes\\n",
    );
    std::thread::sleep(Duration::from_millis(1100));
    let out = host.check(&ep, &flags);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let newer = host.report();
    assert_eq!(host.spooled().len(), 2);
    let spool_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(host.spool()).unwrap().permissions(),
    ) & 0o777;
    assert_eq!(spool_mode, 0o700);
    for name in host.spooled() {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(host.spool().join(name))
                .unwrap()
                .permissions(),
        ) & 0o777;
        assert_eq!(mode, 0o600);
    }

    // The outage ends (the endpoint forgets its queued faults and log); one flush sends both.
    ep.reset();
    let out = host.flush(&ep, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(host.spooled().is_empty());
    let sent = stored(&ep, "PutComplianceItems");
    assert_eq!(sent.len(), 2, "both reports delivered, no duplicate");
    let times: Vec<f64> = sent
        .iter()
        .map(|r| {
            r["body"]["ExecutionSummary"]["ExecutionTime"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(times[0] < times[1], "oldest first: {times:?}");
    let seq: Vec<u64> = ep
        .log()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert!(seq.windows(2).all(|w| w[0] < w[1]));
    // What SSM shows is the newer report, never the older one over it.
    let items = compliance_items(&ep, NODE);
    assert_matches_report(&items, &newer);
    assert_ne!(
        common::status(&older, "ssh-permit-root-login-no"),
        common::status(&newer, "ssh-permit-root-login-no")
    );
    let inventory = inventory_summary(&ep, NODE);
    assert_eq!(
        inventory["Fail"],
        newer["totals"]["by_status"]["fail"].to_string()
    );
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn an_agent_killed_mid_delivery_loses_nothing_and_resends_nothing() {
    let ep = SsmEndpoint::start_with(false, true);
    let host = Host::new();
    // Compliance goes through, then the inventory call hangs and the agent is SIGKILLed there
    // (what Run Command does to the whole process group at its timeout).
    ep.fault("PutInventory", Fault::Hang, 1);
    let report = host.report_path();
    let mut child = host
        .agent(
            &ep,
            &[
                "check",
                "--root",
                host.root(),
                "--skip",
                "fim",
                "--format",
                "json",
                "--output",
                report.to_str().unwrap(),
                "--report",
                "ssm",
                "--instance-id",
                NODE,
                "--region",
                REGION,
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while ep.requests("PutInventory").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the agent never reached PutInventory: {}",
            ep.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(host.spooled().len(), 1, "the report survived the kill");
    assert_eq!(stored(&ep, "PutComplianceItems").len(), 1);
    assert!(stored(&ep, "PutInventory").is_empty());

    let out = host.flush(&ep, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(host.spooled().is_empty());
    assert_eq!(
        ep.requests("PutComplianceItems").len(),
        1,
        "compliance was accepted before the kill: not sent again"
    );
    assert_eq!(stored(&ep, "PutInventory").len(), 1);
    assert_matches_report(&compliance_items(&ep, NODE), &host.report());
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn the_fim_digest_is_published_at_bake_and_pinned_at_verify() {
    let ep = SsmEndpoint::start();
    let host = Host::new();
    let manifest = host.state.path().join("manifest");
    let param = "/ec2-harden/debian-12/fim-digest";
    let out = run(&mut host.agent(
        &ep,
        &[
            "check",
            "--root",
            host.root(),
            "--stage",
            "bake",
            "--only",
            "fim",
            "--fim-manifest",
            manifest.to_str().unwrap(),
            "--format",
            "json",
            "--output",
            host.report_path().to_str().unwrap(),
            "--publish-digest-parameter",
            param,
        ],
    ));
    assert!(out.status.success(), "{}", text(&out));
    let report = host.report();
    let sealed = common::result(&report, "fim-manifest-sealed").to_string();
    let got = ep.aws_json(&["ssm", "get-parameter", "--name", param]);
    let digest = got["Parameter"]["Value"].as_str().unwrap().to_string();
    assert!(
        digest.starts_with("sha256:") && sealed.contains(&digest),
        "{got} vs {sealed}"
    );

    let verify = |extra: &[&str]| {
        let mut args = vec![
            "fim",
            "verify",
            "--root",
            host.root(),
            "--manifest",
            manifest.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&mut host.agent(&ep, &args))
    };
    let out = verify(&["--expect-digest-parameter", param]);
    assert!(out.status.success(), "{}", text(&out));
    // The parameter says another digest (a manifest rewritten on the host would not match it).
    let other = format!("sha256:{}", "0".repeat(64));
    ep.aws_json(&[
        "ssm",
        "put-parameter",
        "--name",
        param,
        "--value",
        &other,
        "--type",
        "String",
        "--overwrite",
    ]);
    let out = verify(&["--expect-digest-parameter", param]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not the pinned manifest: a finding; {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match the expected"),
        "{}",
        text(&out)
    );
    // A parameter that does not exist: a configuration error naming it and the endpoint.
    let out = verify(&["--expect-digest-parameter", "/ec2-harden/missing"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/ec2-harden/missing") && stderr.contains(ep.url()),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn an_unreachable_endpoint_is_named_and_the_report_waits_in_the_spool() {
    let ep = SsmEndpoint::start_with(false, true);
    let host = Host::new();
    // Nothing listens on port 9 of loopback.
    let out = run(host
        .check_ssh(&ep, NODE, &["--report-deadline", "3"])
        .env("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:9"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http://127.0.0.1:9"), "{stderr}");
    assert_eq!(host.spooled().len(), 1);
    // The endpoint comes back: the flush delivers.
    let out = host.flush(&ep, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(host.spooled().is_empty());
    assert_eq!(stored(&ep, "PutComplianceItems").len(), 1);
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn https_is_verified_against_the_trust_store_and_an_unknown_issuer_is_refused() {
    // The real endpoint is HTTPS: the agent's client (hyper + rustls on ring) must trust what the
    // host's store trusts (SSL_CERT_FILE here stands for /etc/ssl/certs or /etc/pki/tls) and
    // nothing else.
    let ep = SsmEndpoint::start_tls();
    assert!(ep.url().starts_with("https://127.0.0.1:"), "{}", ep.url());
    let host = Host::new();
    let deadline = ["--report-deadline", "5"];

    // A certificate from a CA the host does not trust (another endpoint's): no report sent.
    let stranger = SsmEndpoint::start_tls();
    let out = run(host
        .check_ssh(&ep, NODE, &deadline)
        .env("SSL_CERT_FILE", stranger.ca_pem())
        .env_remove("SSL_CERT_DIR"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(ep.url()), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("certificate"),
        "the TLS failure is named: {stderr}"
    );
    assert_eq!(host.spooled().len(), 1);
    assert!(compliance_items(&ep, NODE).is_empty());

    // The host trusts the endpoint's CA: the spooled report and this run's are delivered.
    let out = run(host
        .check_ssh(&ep, NODE, &deadline)
        .env("SSL_CERT_FILE", ep.ca_pem())
        .env_remove("SSL_CERT_DIR"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(host.spooled().is_empty());
    let (_, report, _) = common::check_json(host.root.path(), &["--only", "ssh"]);
    assert_eq!(
        compliance_items(&ep, NODE).len(),
        report["results"].as_array().unwrap().len()
    );
}
