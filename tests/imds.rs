//! The `imds` family end to end: the built binary, pointed at the IMDS emulator
//! (`tests/imds/emulator.rs`) with `AWS_EC2_METADATA_SERVICE_ENDPOINT`, for an instance with IMDSv1
//! allowed, one with IMDSv2 only, no role, expired credentials, the wrong account or region, missing
//! tags, an IMDS that is down, hangs after accepting or answers slowly (the deadline holds), the
//! environment overrides, and `--offline` / image roots (IMDS never asked).

mod common;
#[path = "imds/emulator.rs"]
mod emulator;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{bin, ids_with, result, status};
use emulator::{down_endpoint, raw, Config, Emulator, Mode};

const IMDS_RULES: &[&str] = &[
    "imds-account-allowed",
    "imds-endpoint-reachable",
    "imds-instance-profile-attached",
    "imds-region-allowed",
    "imds-required-tags",
    "imds-role-allowed",
    "imds-role-credentials-valid",
    "imds-v2-required",
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// `check --only imds` on this host with `endpoint` as the IMDS endpoint, plus `args` and `env`.
fn check(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = bin();
    cmd.args(["check", "--only", "imds", "--baseline", "common"])
        .args(args)
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run ec2-harden");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}); exit {}; stderr:\n{}\nstdout:\n{}",
            run.code, run.stderr, run.stdout
        )
    })
}

fn check_json(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> (Run, serde_json::Value) {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let run = check(endpoint, &all, env);
    let report = json(&run);
    (run, report)
}

fn validate_schema(report: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/report.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

fn assert_no_secret(text: &str) {
    for secret in [
        emulator::SECRET_ACCESS_KEY,
        emulator::SESSION_TOKEN,
        emulator::ACCESS_KEY_ID,
    ] {
        assert!(!text.contains(secret), "a secret leaked: {secret}\n{text}");
    }
}

fn reason<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    result(report, id)["reason"].as_str().unwrap_or("")
}

/// A site layer over common that fills the imds allow-lists (each rule given in full, as a layer
/// replaces a rule by id).
fn site_layer(dir: &Path, rules: &[(&str, &str, &str)]) -> String {
    let mut text = String::from(
        "[baseline]\nname = \"site-imds\"\nversion = \"1\"\nextends = [\"common\"]\n\n",
    );
    for (id, check, params) in rules {
        text.push_str(&format!(
            "[[imds]]\nid = \"{id}\"\ntitle = \"{id}\"\nseverity = \"high\"\nstages = [\"boot\", \"run\"]\n\
             check = \"{check}\"\nrationale = \"site policy\"\nremediation = \"fix it\"\n{params}\n\n"
        ));
    }
    let path = dir.join("site-imds.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn the_emulator_follows_the_imds_token_rules() {
    let emu = Emulator::start(Config::v2_only());
    let ep = emu.endpoint();
    let token_path = "/latest/api/token";
    let ttl = "X-aws-ec2-metadata-token-ttl-seconds";
    assert_eq!(raw(&ep, "PUT", token_path, &[]).0, 400, "no TTL");
    assert_eq!(raw(&ep, "PUT", token_path, &[(ttl, "0")]).0, 400);
    assert_eq!(raw(&ep, "PUT", token_path, &[(ttl, "21601")]).0, 400);
    assert_eq!(raw(&ep, "PUT", token_path, &[(ttl, "ten")]).0, 400);
    assert_eq!(
        raw(
            &ep,
            "PUT",
            token_path,
            &[(ttl, "60"), ("X-Forwarded-For", "10.0.0.1")]
        )
        .0,
        403
    );
    assert_eq!(raw(&ep, "GET", token_path, &[(ttl, "60")]).0, 405);
    let (code, token) = raw(&ep, "PUT", token_path, &[(ttl, "21600")]);
    assert_eq!(code, 200);
    let id = "/latest/meta-data/instance-id";
    let with = [("X-aws-ec2-metadata-token", token.as_str())];
    assert_eq!(
        raw(&ep, "GET", id, &with),
        (200, "i-0123456789abcdef0".to_string())
    );
    assert_eq!(raw(&ep, "GET", id, &[]).0, 401, "v2 only: no token");
    assert_eq!(
        raw(&ep, "GET", id, &[("X-aws-ec2-metadata-token", "forged")]).0,
        401
    );
    assert_eq!(raw(&ep, "GET", "/latest/meta-data/nope", &with).0, 404);
    assert_eq!(raw(&ep, "POST", id, &with).0, 405);

    let v1 = Emulator::start(Config::v1_allowed());
    assert_eq!(raw(&v1.endpoint(), "GET", id, &[]).0, 200, "v1 allowed");
    assert_eq!(
        raw(
            &v1.endpoint(),
            "GET",
            id,
            &[("X-aws-ec2-metadata-token", "forged")]
        )
        .0,
        401,
        "an invalid token is refused even when tokens are optional"
    );
    // an expired token is refused
    let exp = Emulator::start(Config {
        expire_first_token: true,
        ..Config::v2_only()
    });
    let (_, t) = raw(&exp.endpoint(), "PUT", token_path, &[(ttl, "60")]);
    assert_eq!(
        raw(
            &exp.endpoint(),
            "GET",
            id,
            &[("X-aws-ec2-metadata-token", t.as_str())]
        )
        .0,
        401
    );
}

#[test]
fn v1_allowed_instance_fails_imdsv2_required() {
    let emu = Emulator::start(Config::v1_allowed());
    let (run, report) = check_json(
        &emu.endpoint(),
        &[],
        &[("EC2_HARDEN_LOG", "ec2_harden=trace")],
    );
    validate_schema(&report);
    assert_eq!(run.code, 1, "a high finding: {}", run.stderr);
    assert_eq!(ids_with(&report, "fail"), ["imds-v2-required"]);
    assert_eq!(
        ids_with(&report, "pass"),
        [
            "imds-endpoint-reachable",
            "imds-instance-profile-attached",
            "imds-role-credentials-valid"
        ]
    );
    let ev = &result(&report, "imds-v2-required")["evidence"][0];
    assert_eq!(ev["found"], "HTTP 200 (HttpTokens optional)");
    assert_eq!(ev["expected"], "HTTP 401 (HttpTokens required)");
    assert_eq!(result(&report, "imds-v2-required")["severity"], "high");
    let imds = &report["host"]["imds"];
    assert_eq!(imds["state"], "reachable");
    assert_eq!(imds["imdsv1"]["http_status"], 200);
    assert_eq!(imds["imdsv1"]["v1_allowed"], true);
    assert_eq!(imds["identity"]["account_id"], "123456789012");
    assert_eq!(imds["identity"]["region"], "eu-west-1");
    assert_eq!(imds["identity"]["availability_zone"], "eu-west-1a");
    assert_eq!(imds["identity"]["instance_id"], "i-0123456789abcdef0");
    assert_eq!(imds["identity"]["image_id"], "ami-0abcdef1234567890");
    assert_eq!(imds["identity"]["instance_type"], "t3.micro");
    assert_eq!(imds["credentials"]["access_key_id"], "ASIA****MPLE");
    assert_eq!(imds["credentials"]["role"], "web-server-role");
    assert_eq!(imds["tags"]["tags"]["Owner"], "platform-team");
    // no secret anywhere: report, logs at trace level, text report
    assert_no_secret(&run.stdout);
    assert_no_secret(&run.stderr);
    let text = check(&emu.endpoint(), &[], &[]);
    assert_no_secret(&text.stdout);
    assert!(text.stdout.contains("imds-v2-required"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("; IMDSv1 allowed; role web-server-role\n"),
        "{}",
        text.stdout
    );
    assert!(text
        .stdout
        .ends_with("FAILED: 1 finding at or above high\n"));
}

#[test]
fn v2_only_instance_passes_and_every_read_carries_the_token() {
    let emu = Emulator::start(Config::v2_only());
    let (run, report) = check_json(&emu.endpoint(), &[], &[]);
    validate_schema(&report);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(ids_with(&report, "fail").is_empty());
    assert!(ids_with(&report, "error").is_empty());
    assert_eq!(
        ids_with(&report, "pass"),
        [
            "imds-endpoint-reachable",
            "imds-instance-profile-attached",
            "imds-role-credentials-valid",
            "imds-v2-required"
        ]
    );
    // the allow-lists are empty in common: not applicable, with the reason
    for id in [
        "imds-account-allowed",
        "imds-region-allowed",
        "imds-role-allowed",
    ] {
        assert!(reason(&report, id).starts_with("no allow-list"), "{id}");
    }
    assert!(reason(&report, "imds-required-tags").starts_with("no required tags"));
    assert_eq!(report["host"]["imds"]["imdsv1"]["http_status"], 401);
    assert_no_secret(&run.stdout);

    let requests = emu.requests();
    let puts: Vec<_> = requests.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 1, "one token per run");
    let ttl: u32 = puts[0].headers["x-aws-ec2-metadata-token-ttl-seconds"]
        .parse()
        .unwrap();
    assert!((1..=21600).contains(&ttl));
    assert!(!puts[0].headers.contains_key("x-forwarded-for"));
    let tokenless: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "GET" && !r.headers.contains_key("x-aws-ec2-metadata-token"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        tokenless,
        ["/latest/meta-data/instance-id"],
        "only the v1 probe goes without"
    );
    for path in [
        "/latest/dynamic/instance-identity/document",
        "/latest/meta-data/iam/info",
        "/latest/meta-data/iam/security-credentials/web-server-role",
        "/latest/meta-data/tags/instance/Owner",
    ] {
        assert!(requests.iter().any(|r| r.path == path), "{path} not read");
    }
    let text = check(&emu.endpoint(), &[], &[]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains(&format!(
            "imds {}: instance i-0123456789abcdef0 (t3.micro, ami-0abcdef1234567890) in eu-west-1a, \
             account 123456789012; IMDSv2 only; role web-server-role\n",
            emu.endpoint()
        )),
        "{}",
        text.stdout
    );
}

#[test]
fn no_role_fails_instance_profile_and_404_is_not_retried() {
    let emu = Emulator::start(Config {
        role: None,
        ..Config::v2_only()
    });
    let (_, report) = check_json(&emu.endpoint(), &[], &[]);
    assert_eq!(
        ids_with(&report, "fail"),
        ["imds-instance-profile-attached"]
    );
    assert_eq!(
        status(&report, "imds-role-credentials-valid"),
        "not-applicable"
    );
    assert!(reason(&report, "imds-role-credentials-valid").starts_with("no instance profile"));
    assert_eq!(
        report["host"]["imds"]["instance_profile"]["status"],
        "absent"
    );
    let iam_info = emu
        .requests()
        .iter()
        .filter(|r| r.path == "/latest/meta-data/iam/info")
        .count();
    assert_eq!(iam_info, 1, "404 is an answer, not retried");
}

#[test]
fn expired_or_failed_credentials_fail() {
    let mut config = Config::v2_only();
    let role = config.role.as_mut().unwrap();
    role.expiration = "2024-01-01T00:00:00Z".into();
    let emu = Emulator::start(config);
    let (_, report) = check_json(&emu.endpoint(), &[], &[]);
    assert_eq!(ids_with(&report, "fail"), ["imds-role-credentials-valid"]);
    let ev = &result(&report, "imds-role-credentials-valid")["evidence"][0];
    assert_eq!(ev["found"], "Expiration 2024-01-01T00:00:00Z");
    assert!(ev["message"]
        .as_str()
        .unwrap()
        .contains("access key ASIA****MPLE"));

    let mut config = Config::v2_only();
    config.role.as_mut().unwrap().code = "AssumeRoleUnauthorizedAccess".into();
    let emu = Emulator::start(config);
    let (_, report) = check_json(&emu.endpoint(), &[], &[]);
    assert_eq!(ids_with(&report, "fail"), ["imds-role-credentials-valid"]);
    assert_eq!(
        result(&report, "imds-role-credentials-valid")["evidence"][0]["found"],
        "Code AssumeRoleUnauthorizedAccess"
    );
}

#[test]
fn allow_lists_judge_account_region_role_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(Config::v2_only());
    let wrong = site_layer(
        dir.path(),
        &[
            (
                "imds-account-allowed",
                "account",
                "allow = [\"999999999999\"]",
            ),
            ("imds-region-allowed", "region", "allow = [\"us-*\"]"),
            (
                "imds-role-allowed",
                "role",
                "allow = [\"db-*\", \"arn:aws:iam::999999999999:instance-profile/*\"]",
            ),
            (
                "imds-required-tags",
                "tags",
                "required = [\"Owner\", \"CostCenter\"]\nvalues = { Environment = [\"staging\"] }",
            ),
        ],
    );
    let (run, report) = check_json(&emu.endpoint(), &["--baseline", &wrong], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        ids_with(&report, "fail"),
        [
            "imds-account-allowed",
            "imds-region-allowed",
            "imds-required-tags",
            "imds-role-allowed"
        ]
    );
    let ev = &result(&report, "imds-account-allowed")["evidence"][0];
    assert_eq!(ev["found"], "123456789012");
    assert_eq!(ev["expected"], "one of 999999999999");
    assert_eq!(
        result(&report, "imds-region-allowed")["evidence"][0]["found"],
        "eu-west-1"
    );
    let tags: Vec<&str> = result(&report, "imds-required-tags")["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        [
            "instance tag CostCenter is missing",
            "instance tag Environment has a value not allowed"
        ]
    );

    let dir2 = tempfile::tempdir().unwrap();
    let right = site_layer(
        dir2.path(),
        &[
            (
                "imds-account-allowed",
                "account",
                "allow = [\"123456789012\"]",
            ),
            ("imds-region-allowed", "region", "allow = [\"eu-*\"]"),
            (
                "imds-role-allowed",
                "role",
                "allow = [\"arn:aws:iam::123456789012:instance-profile/web-*\"]",
            ),
            (
                "imds-required-tags",
                "tags",
                "required = [\"Owner\"]\nvalues = { Environment = [\"prod\", \"staging\"] }",
            ),
        ],
    );
    let (run, report) = check_json(&emu.endpoint(), &["--baseline", &right], &[]);
    assert_eq!(run.code, 0);
    assert!(ids_with(&report, "fail").is_empty());
    assert_eq!(ids_with(&report, "pass").len(), IMDS_RULES.len());
}

#[test]
fn required_tags_fail_when_tags_are_not_in_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(Config {
        tags: None,
        ..Config::v2_only()
    });
    let site = site_layer(
        dir.path(),
        &[("imds-required-tags", "tags", "required = [\"Owner\"]")],
    );
    let (_, report) = check_json(&emu.endpoint(), &["--baseline", &site], &[]);
    assert_eq!(ids_with(&report, "fail"), ["imds-required-tags"]);
    let msg = result(&report, "imds-required-tags")["evidence"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("answered 404"), "{msg}");
    assert_eq!(report["host"]["imds"]["tags"]["status"], "absent");
}

#[test]
fn imds_down_is_not_applicable_at_once_unless_ec2_is_required() {
    let ep = down_endpoint();
    let (run, report) = check_json(&ep, &[], &[]);
    validate_schema(&report);
    assert_eq!(run.code, 0);
    assert!(run.elapsed < Duration::from_secs(2), "{:?}", run.elapsed);
    assert_eq!(ids_with(&report, "not-applicable"), IMDS_RULES);
    for id in IMDS_RULES {
        assert!(
            reason(&report, id)
                .starts_with("not on EC2 / IMDS unreachable: IMDS at http://127.0.0.1:")
                && reason(&report, id).contains("could not be reached (TCP connect)"),
            "{id}: {}",
            reason(&report, id)
        );
    }
    assert_eq!(report["host"]["imds"]["state"], "unreachable");
    assert_eq!(
        report["host"]["imds"]["requests"], 0,
        "the TCP connect failed: no HTTP request"
    );

    let dir = tempfile::tempdir().unwrap();
    let site = site_layer(
        dir.path(),
        &[("imds-endpoint-reachable", "endpoint", "require_ec2 = true")],
    );
    let (run, report) = check_json(&ep, &["--baseline", &site], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(ids_with(&report, "fail"), ["imds-endpoint-reachable"]);
}

#[test]
fn imds_hanging_after_accept_holds_the_deadline() {
    let emu = Emulator::start(Config {
        mode: Mode::HangAfterAccept,
        ..Config::v2_only()
    });
    let (run, report) = check_json(&emu.endpoint(), &[], &[]);
    assert!(
        run.elapsed < Duration::from_secs(4),
        "the whole check took {:?}",
        run.elapsed
    );
    let imds = &report["host"]["imds"];
    assert_eq!(imds["state"], "unreachable");
    assert!(imds["elapsed_ms"].as_u64().unwrap() <= 3100, "{imds}");
    assert_eq!(ids_with(&report, "not-applicable"), IMDS_RULES);
    assert!(
        reason(&report, "imds-v2-required").contains("did not answer PUT /latest/api/token"),
        "{}",
        reason(&report, "imds-v2-required")
    );
    // the token PUT and the tokenless probe were both tried, nothing more
    assert_eq!(emu.requests().len(), 2);
}

#[test]
fn a_403_for_everything_is_not_imds() {
    // an instance with HttpEndpoint disabled, or off EC2 a proxy answering for 169.254.169.254
    let emu = Emulator::start(Config {
        mode: Mode::Forbidden,
        ..Config::v2_only()
    });
    let (run, report) = check_json(&emu.endpoint(), &[], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(report["host"]["imds"]["state"], "unreachable");
    assert_eq!(ids_with(&report, "not-applicable"), IMDS_RULES);
    let why = reason(&report, "imds-v2-required");
    assert!(
        why.starts_with("not on EC2 / IMDS unreachable: ")
            && why.contains("answered PUT /latest/api/token with HTTP 403")
            && why.contains("without a token: HTTP 403"),
        "{why}"
    );
    assert!(run.elapsed < Duration::from_secs(2));
}

#[test]
fn slow_imds_is_read_and_a_too_slow_one_stops_at_the_deadline() {
    let emu = Emulator::start(Config {
        mode: Mode::Slow(Duration::from_millis(100)),
        ..Config::v2_only()
    });
    let (run, report) = check_json(&emu.endpoint(), &[], &[]);
    assert_eq!(run.code, 0);
    assert_eq!(ids_with(&report, "pass").len(), 4);

    let emu = Emulator::start(Config {
        mode: Mode::Slow(Duration::from_millis(700)),
        ..Config::v2_only()
    });
    let (run, report) = check_json(&emu.endpoint(), &[], &[]);
    assert!(run.elapsed < Duration::from_secs(4), "{:?}", run.elapsed);
    let imds = &report["host"]["imds"];
    assert_eq!(imds["state"], "reachable");
    assert!(imds["elapsed_ms"].as_u64().unwrap() <= 3100, "{imds}");
    // what was read in time is judged; what was not is an error naming the deadline
    assert_eq!(status(&report, "imds-v2-required"), "pass");
    let errors = ids_with(&report, "error");
    assert!(
        errors.contains(&"imds-role-credentials-valid".to_string()),
        "{errors:?}"
    );
    let cause = result(&report, "imds-role-credentials-valid")["cause"]
        .as_str()
        .unwrap();
    assert!(
        cause.contains("deadline") || cause.contains("did not answer"),
        "{cause}"
    );
}

#[test]
fn retries_on_5xx_and_on_an_expired_token() {
    let emu = Emulator::start(Config {
        fail_first_gets: 2,
        ..Config::v2_only()
    });
    let (_, report) = check_json(&emu.endpoint(), &[], &[]);
    assert!(ids_with(&report, "error").is_empty(), "{report:#}");
    assert_eq!(status(&report, "imds-instance-profile-attached"), "pass");
    let identity_reads = emu
        .requests()
        .iter()
        .filter(|r| r.path == "/latest/dynamic/instance-identity/document")
        .count();
    assert_eq!(identity_reads, 3, "two 503s, then the answer");

    let emu = Emulator::start(Config {
        expire_first_token: true,
        ..Config::v2_only()
    });
    let (_, report) = check_json(&emu.endpoint(), &[], &[]);
    assert!(ids_with(&report, "error").is_empty(), "{report:#}");
    let puts = emu.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 2, "the 401 got a fresh token");
}

#[test]
fn environment_overrides() {
    let emu = Emulator::start(Config::v2_only());
    // disabled: nothing is asked
    let (_, report) = check_json(
        &emu.endpoint(),
        &[],
        &[("AWS_EC2_METADATA_DISABLED", "true")],
    );
    assert!(emu.requests().is_empty());
    assert_eq!(report["host"]["imds"]["state"], "disabled");
    assert_eq!(ids_with(&report, "not-applicable"), IMDS_RULES);
    assert_eq!(
        reason(&report, "imds-v2-required"),
        "IMDS queries are disabled (AWS_EC2_METADATA_DISABLED=true)"
    );
    // the explicit endpoint wins over the IPv6 mode
    let (_, report) = check_json(
        &emu.endpoint(),
        &[],
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")],
    );
    assert_eq!(report["host"]["imds"]["endpoint"], emu.endpoint());
    assert_eq!(status(&report, "imds-v2-required"), "pass");
    // a bad mode is a configuration error naming the variable
    let run = check(
        &emu.endpoint(),
        &[],
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "dual-stack")],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=\"dual-stack\": expected IPv4 or IPv6"
        ),
        "{}",
        run.stderr
    );
    let run = check("https://169.254.169.254", &[], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("AWS_EC2_METADATA_SERVICE_ENDPOINT="),
        "{}",
        run.stderr
    );
    // an IPv6 literal endpoint, as with the IPv6 IMDS
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6 = Emulator::start_on("[::1]:0", Config::v1_allowed());
        assert!(v6.endpoint().starts_with("http://[::1]:"));
        let (_, report) = check_json(&v6.endpoint(), &[], &[]);
        assert_eq!(report["host"]["imds"]["state"], "reachable");
        assert_eq!(ids_with(&report, "fail"), ["imds-v2-required"]);
    }
}

#[test]
fn offline_and_image_roots_never_ask_imds() {
    let emu = Emulator::start(Config::v1_allowed());
    let (run, report) = check_json(&emu.endpoint(), &["--offline"], &[]);
    assert_eq!(run.code, 0);
    assert_eq!(ids_with(&report, "not-applicable"), IMDS_RULES);
    assert_eq!(
        reason(&report, "imds-v2-required"),
        "--offline: network probes are off"
    );
    assert_eq!(report["host"]["imds"]["state"], "skipped");

    let root = tempfile::tempdir().unwrap();
    let (_, report) = check_json(
        &emu.endpoint(),
        &["--root", root.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(ids_with(&report, "not-applicable"), IMDS_RULES);
    assert!(reason(&report, "imds-v2-required").starts_with("the sysroot is not this instance"));
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());

    // a run without an imds rule does not ask either
    let out = bin()
        .args(["check", "--only", "ssh", "--format", "json"])
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", emu.endpoint())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["host"].get("imds").is_none());
    assert!(emu.requests().is_empty());
}

#[test]
fn the_credentials_role_rule_learns_the_role_from_imds() {
    // a role in IMDS makes the role-conditioned credentials rule apply on this (live) host
    let emu = Emulator::start(Config::v2_only());
    let (_, report) = check_json(&emu.endpoint(), &["--only", "credentials"], &[]);
    let role_rule = "credentials-no-long-term-keys-with-role";
    assert_ne!(status(&report, role_rule), "not-applicable", "{report:#}");
    assert_eq!(
        status(&report, role_rule),
        status(&report, "credentials-no-long-term-keys"),
        "same scan, the role only raises the severity"
    );
    // no instance profile (iam/info 404): not applicable, and IMDS says why
    let emu = Emulator::start(Config {
        role: None,
        ..Config::v2_only()
    });
    let (_, report) = check_json(&emu.endpoint(), &["--only", "credentials"], &[]);
    assert_eq!(status(&report, role_rule), "not-applicable");
    let why = reason(&report, role_rule);
    assert!(why.contains("no instance profile attached"), "{why}");
}
