//! The ready-to-use integrations — `packer/`, `ssm/`, `cloud-init/`, `systemd/` — checked by the
//! real tools that consume them, and run end to end where this machine allows:
//!
//! * Packer 1.6.6 (Debian's): `packer fmt -check` and `packer validate` on the template, and a real
//!   `packer build -only=null.local` over SSH to a private `sshd` on a high port, as a throwaway
//!   user with passwordless sudo, against a copy of a debootstrapped Debian root (`--root`), so
//!   this host is not modified: the build fails on a seeded high-severity fault and passes once it
//!   is fixed.
//! * The SSM Command document in YAML and JSON: identical, valid against the schema 2.2 structure
//!   kept in `tests/schemas/`, its parameters' `allowedPattern`s refuse shell metacharacters, its
//!   `runCommand` runs through the shell with `{{ param }}` substituted as SSM does (the agent's
//!   exit code comes out), and the real AWS CLI registers it with a local moto server.
//! * cloud-init's own `cloud-init schema` on the user data (and every top-level key known to the
//!   schema), and systemd's `systemd-analyze verify` on the service and timer.
//!
//! `tests/run.sh` installs packer, cloud-init, openssh-server and a Python venv (`target/venv`:
//! awscli, moto, PyYAML, cfn-lint).

mod common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::apply;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_ec2-harden")
}

/// Run `cmd`, panicking with a hint when the tool is not installed.
fn output(cmd: &mut Command) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.output()
        .unwrap_or_else(|e| panic!("{program}: {e} (tests/run.sh installs the integration tools)"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Where the tests keep logs worth reading after a run (the Packer build logs).
fn log_dir() -> PathBuf {
    let dir = repo().join("target/integrations");
    fs::create_dir_all(&dir).unwrap();
    dir
}

// ------------------------------------------------------------------------------------------------
// Packer

fn packer() -> Command {
    let mut cmd = Command::new("packer");
    // no version check against the network; no plugin or cache state from the host
    let state = std::env::temp_dir().join("ec2h-packer-state");
    cmd.env("CHECKPOINT_DISABLE", "1")
        .env("PACKER_CACHE_DIR", state.join("cache"))
        .env("PACKER_CONFIG_DIR", state.join("config"))
        .env_remove("PACKER_LOG")
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(repo());
    cmd
}

#[test]
#[ignore = "needs tools: packer"]
fn packer_template_is_formatted_and_validates() {
    let out = output(packer().args(["fmt", "-check", "-diff", "packer/"]));
    assert!(out.status.success(), "packer fmt -check:\n{}", text(&out));

    let out = output(packer().args([
        "validate",
        "-var",
        &format!("agent_binary={}", agent()),
        "packer/",
    ]));
    assert!(out.status.success(), "packer validate:\n{}", text(&out));

    // the validator is not a rubber stamp: a template with an unknown builder argument fails it
    let dir = tempfile::tempdir().unwrap();
    let template = fs::read_to_string(repo().join("packer/ec2-harden.pkr.hcl")).unwrap();
    let broken = template.replacen(
        "  instance_type        = var.instance_type\n",
        "  instance_type        = var.instance_type\n  instance_typo        = \"t3.micro\"\n",
        1,
    );
    assert_ne!(
        broken, template,
        "the template still has its instance_type line"
    );
    fs::write(dir.path().join("broken.pkr.hcl"), broken).unwrap();
    fs::copy(
        repo().join("packer/site.toml"),
        dir.path().join("site.toml"),
    )
    .unwrap();
    let out = output(
        packer()
            .args(["validate", "-var", &format!("agent_binary={}", agent())])
            .arg(dir.path()),
    );
    assert!(
        !out.status.success(),
        "a misspelt argument passed packer validate"
    );
    assert!(text(&out).contains("instance_typo"), "{}", text(&out));
}

/// A throwaway login: a user with passwordless sudo and a private `sshd` on a high loopback port
/// that accepts only that user's throwaway key. Everything is removed on drop.
struct SshTarget {
    user: String,
    port: u16,
    key: PathBuf,
    sudoers: PathBuf,
    sshd: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SshTarget {
    fn start() -> SshTarget {
        let user = format!("ec2h-pk{}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("ec2h-sshd-")
            .tempdir()
            .unwrap();
        // sshd reads authorized_keys as the user
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let run = |cmd: &mut Command| {
            let out = output(cmd);
            assert!(out.status.success(), "{cmd:?}: {}", text(&out));
        };
        run(Command::new("useradd").args(["-m", "-s", "/bin/sh", &user]));
        let sudoers = PathBuf::from(format!("/etc/sudoers.d/{user}"));
        // from here on, Drop cleans up
        let mut target = SshTarget {
            user: user.clone(),
            port: 0,
            key: dir.path().join("id_ed25519"),
            sudoers: sudoers.clone(),
            sshd: Command::new("true").spawn().unwrap(),
            log: dir.path().join("sshd.log"),
            _dir: dir,
        };
        let dir = target._dir.path().to_path_buf();
        // not locked ("!" refuses even key logins without PAM), but no password either
        run(Command::new("usermod").args(["-p", "*", &user]));
        fs::write(&sudoers, format!("{user} ALL=(ALL) NOPASSWD: ALL\n")).unwrap();
        fs::set_permissions(&sudoers, fs::Permissions::from_mode(0o440)).unwrap();
        for name in ["host_ed25519", "id_ed25519"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "ec2h-test", "-f"])
                .arg(dir.join(name)));
        }
        fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys")).unwrap();
        fs::set_permissions(
            dir.join("authorized_keys"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        target.port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin no\nAllowUsers {user}\nSubsystem sftp /usr/lib/openssh/sftp-server\n\
                 LogLevel VERBOSE\n",
                port = target.port,
                d = dir.display(),
            ),
        )
        .unwrap();
        // the privilege-separation directory the package's unit would create
        fs::create_dir_all("/run/sshd").unwrap();
        run(Command::new("/usr/sbin/sshd")
            .arg("-t")
            .arg("-f")
            .arg(&config));
        let log = fs::File::create(&target.log).unwrap();
        target.sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd (openssh-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", target.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {}: {}",
                target.port,
                fs::read_to_string(&target.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        target
    }

    fn home(&self) -> PathBuf {
        PathBuf::from(format!("/home/{}", self.user))
    }
}

impl Drop for SshTarget {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        let _ = fs::remove_file(&self.sudoers);
        let _ = Command::new("userdel")
            .args(["-r", &self.user])
            .stderr(Stdio::null())
            .status();
    }
}

/// The cached debootstrapped Debian 12 root of tests/debootstrap.rs, copied (owners, modes and
/// links preserved). Built here too when this suite runs first.
fn debian_root() -> tempfile::TempDir {
    common::debootstrap_copy("ec2h-integ-root-")
}

/// `packer build -only=null.local` of the shipped template against `root`; returns (success, log).
fn packer_build(target: &SshTarget, root: &Path, report: &Path) -> (bool, String) {
    let out = output(packer().args([
        "build",
        "-only=null.local",
        "-color=false",
        "-var",
        &format!("agent_binary={}", agent()),
        "-var",
        &format!("audit_root={}", root.display()),
        "-var",
        &format!("remote_dir={}/ec2-harden", target.home().display()),
        "-var",
        &format!("report_file={}", report.display()),
        "-var",
        &format!("null_ssh_port={}", target.port),
        "-var",
        &format!("null_ssh_username={}", target.user),
        "-var",
        &format!("null_ssh_private_key_file={}", target.key.display()),
        "packer/",
    ]));
    (out.status.success(), text(&out))
}

#[test]
#[ignore = "needs root, network, tools: packer, sshd, a throwaway user and a debootstrapped root"]
fn packer_null_build_fails_on_a_seeded_fault_and_passes_after_the_fix() {
    let target = SshTarget::start();
    let root = debian_root();
    let root = root.path();
    // the image as earlier provisioning left it: hardened sshd, plus a forgotten debug drop-in
    // that turns root logins back on (sshd takes the first value: 10- beats 60-)
    apply(
        root,
        "write /etc/ssh/sshd_config.d/60-hardening.conf PermitRootLogin no\\n\n\
         write /etc/ssh/sshd_config.d/10-debug.conf PermitRootLogin yes\\n",
    );
    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("ec2-harden-bake.xml");

    let t = Instant::now();
    let (ok, log) = packer_build(&target, root, &report);
    let failing_secs = t.elapsed().as_secs_f64();
    fs::write(log_dir().join("packer-build-seeded-fault.log"), &log).unwrap();
    let sshd_log = || fs::read_to_string(&target.log).unwrap_or_default();
    assert!(
        !ok,
        "the build passed with PermitRootLogin yes:\n{log}\nsshd:\n{}",
        sshd_log()
    );
    // the agent ran over SSH, as root, at stage bake, and said why
    assert!(log.contains("stage bake"), "{log}\nsshd:\n{}", sshd_log());
    assert!(
        log.contains("[HIGH] FAIL  ssh-permit-root-login-no"),
        "{log}"
    );
    assert!(log.contains("ec2-harden: exit 1"), "{log}");
    assert!(log.contains("FAILED: 1 finding at or above high"), "{log}");
    // the JUnit report came back to the build machine before the gate failed the build
    let junit = fs::read_to_string(&report).expect("the JUnit report was downloaded");
    let case = junit
        .split("<testcase ")
        .find(|c| c.starts_with("name=\"ssh-permit-root-login-no\""))
        .expect("the rule is in the JUnit report");
    assert!(case.contains("<failure"), "{case}");
    // the site layer was uploaded, installed and applied
    assert!(
        junit.contains("name=\"site-agent-binary-permissions\""),
        "{junit}"
    );
    let installed = fs::metadata(root.join("usr/local/bin/ec2-harden")).unwrap();
    assert_eq!(installed.permissions().mode() & 0o7777, 0o755);
    assert!(root.join("etc/ec2-harden/site.toml").is_file());
    // image hygiene ran on the root, not on this host
    assert!(!root.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert!(Path::new("/etc/ssh/sshd_config").exists());

    // fix it and build again
    fs::remove_file(root.join("etc/ssh/sshd_config.d/10-debug.conf")).unwrap();
    fs::remove_file(&report).unwrap();
    let t = Instant::now();
    let (ok, log) = packer_build(&target, root, &report);
    let passing_secs = t.elapsed().as_secs_f64();
    fs::write(log_dir().join("packer-build-fixed.log"), &log).unwrap();
    assert!(ok, "the build failed after the fix:\n{log}");
    assert!(
        log.contains("PASSED: no findings at or above high"),
        "{log}"
    );
    let digest = log
        .split("FIM manifest sha256:")
        .nth(1)
        .map(|s| s.chars().take(64).collect::<String>())
        .expect("the gate printed the FIM digest");
    assert!(
        digest.chars().all(|c| c.is_ascii_hexdigit()) && digest.len() == 64,
        "{digest}"
    );
    assert!(fs::read_to_string(&report).unwrap().contains(&digest));
    // the upload directory was removed from the build machine
    assert!(!target.home().join("ec2-harden").exists());
    fs::write(
        log_dir().join("packer-build-timings.txt"),
        format!("seeded fault: {failing_secs:.1} s\nfixed: {passing_secs:.1} s\n"),
    )
    .unwrap();

    // first boot of the baked image: the manifest it carries is the one whose digest the build
    // printed (what var.fim_digest_parameter publishes), and nothing changed since
    let out = output(
        common::bin()
            .args(["check", "--stage", "boot", "--only", "fim", "--root"])
            .arg(root)
            .args(["--fim-expect-digest", &digest]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = output(
        common::bin()
            .args(["check", "--stage", "boot", "--only", "fim", "--root"])
            .arg(root)
            .args(["--fim-expect-digest", &"0".repeat(64)]),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a wrong pinned digest passed: {}",
        text(&out)
    );
}

// ------------------------------------------------------------------------------------------------
// SSM

fn venv_bin(name: &str) -> PathBuf {
    let p = repo().join("target/venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: tests/run.sh creates the venv (awscli, moto, PyYAML, cfn-lint)",
        p.display()
    );
    p
}

/// A YAML file as JSON, parsed by PyYAML (YAML 1.1 safe loader, as the AWS tooling reads it).
fn yaml(path: &Path) -> serde_json::Value {
    let out = output(
        Command::new(venv_bin("python"))
            .args([
                "-c",
                "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
            ])
            .arg(path),
    );
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn ssm_document() -> serde_json::Value {
    json_file(&repo().join("ssm/ec2-harden-check.json"))
}

/// Every `{{ name }}` in `s` (SSM allows spaces inside the braces).
fn param_refs(s: &str) -> Vec<String> {
    regex::Regex::new(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
        .unwrap()
        .captures_iter(s)
        .map(|c| c[1].to_string())
        .collect()
}

/// An edit that breaks a document.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn ssm_document_yaml_and_json_are_identical_and_match_the_schema() {
    let from_yaml = yaml(&repo().join("ssm/ec2-harden-check.yaml"));
    let doc = ssm_document();
    assert_eq!(from_yaml, doc, "ssm/ec2-harden-check.yaml and .json differ");

    let schema = json_file(&repo().join("tests/schemas/ssm-command-document-2.2.schema.json"));
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // the schema has teeth: each of these edits makes a document AWS would refuse
    let broken: Vec<(&str, Edit)> = vec![
        (
            "schema 2.0",
            Box::new(|d| d["schemaVersion"] = "2.0".into()),
        ),
        (
            "runtimeConfig (schema 1.2)",
            Box::new(|d| d["runtimeConfig"] = serde_json::json!({})),
        ),
        (
            "unknown action",
            Box::new(|d| d["mainSteps"][0]["action"] = "aws:runShell".into()),
        ),
        (
            "runCommand a string",
            Box::new(|d| d["mainSteps"][0]["inputs"]["runCommand"] = "id".into()),
        ),
        (
            "timeout too long",
            Box::new(|d| d["mainSteps"][0]["inputs"]["timeoutSeconds"] = 999999.into()),
        ),
        (
            "unconstrained String parameter",
            Box::new(|d| {
                d["parameters"]["extraArgs"]
                    .as_object_mut()
                    .unwrap()
                    .remove("allowedPattern");
            }),
        ),
        (
            "unanchored pattern",
            Box::new(|d| d["parameters"]["baseline"]["allowedPattern"] = "[a-z]+".into()),
        ),
        (
            "bad platform",
            Box::new(|d| d["mainSteps"][0]["precondition"]["StringEquals"][1] = "Ubuntu".into()),
        ),
    ];
    for (what, edit) in broken {
        let mut d = doc.clone();
        edit(&mut d);
        assert!(
            !validator.is_valid(&d),
            "the schema accepted a document with {what}"
        );
    }

    // Linux only; every {{ parameter }} used is declared and every declared one is used
    let step = &doc["mainSteps"][0];
    assert_eq!(step["action"], "aws:runShellScript");
    assert_eq!(
        step["precondition"]["StringEquals"],
        serde_json::json!(["platformType", "Linux"])
    );
    let declared: Vec<&String> = doc["parameters"].as_object().unwrap().keys().collect();
    let used = param_refs(&step["inputs"].to_string());
    for name in &used {
        assert!(
            declared.contains(&name),
            "{{{{ {name} }}}} is not a declared parameter"
        );
    }
    for name in &declared {
        assert!(used.contains(name), "parameter {name} is never used");
    }
}

/// A parameter value as SSM would accept it (allowedValues, else a full match of allowedPattern).
fn accepted(param: &serde_json::Value, value: &str) -> bool {
    if let Some(values) = param["allowedValues"].as_array() {
        return values.iter().any(|v| v == value);
    }
    let pattern = param["allowedPattern"]
        .as_str()
        .expect("constrained parameter");
    regex::Regex::new(pattern).unwrap().is_match(value)
}

#[test]
fn ssm_parameters_refuse_shell_metacharacters() {
    let doc = ssm_document();
    let params = doc["parameters"].as_object().unwrap();
    let hostile = [
        "run; reboot",
        "run && id",
        "run | sh",
        "$(id)",
        "`id`",
        "run'",
        "run\"",
        "a\nb",
        "a\\b",
        "${IFS}",
        "a>b",
        "a<b",
        "run &",
        "*",
        "?",
        "[a]",
        "~root",
        "!1",
        "#",
        "a{b,c}",
        "a(b)",
    ];
    for (name, p) in params {
        let default = p["default"].as_str().unwrap();
        assert!(
            accepted(p, default),
            "{name}: its default {default:?} is refused"
        );
        for value in hostile {
            assert!(!accepted(p, value), "{name} accepts {value:?}");
        }
    }
    assert!(accepted(
        &params["extraArgs"],
        "--skip fim --only ssh,files --baseline=/etc/ec2-harden/site.toml"
    ));
    assert!(accepted(&params["baseline"], "amazon-linux-2023"));
    assert!(accepted(&params["baseline"], "ubuntu-22.04"));
    assert!(accepted(&params["baseline"], "/etc/ec2-harden/site.toml"));
    assert!(
        !accepted(&params["baseline"], "site.toml"),
        "relative baseline path accepted"
    );
    assert!(accepted(&params["executionTimeout"], "36000"));
    assert!(!accepted(&params["executionTimeout"], "36001"));
    assert!(!accepted(&params["executionTimeout"], "0"));
}

/// The document's script with `values` (else the defaults) substituted the way SSM does.
fn ssm_script(values: &[(&str, &str)]) -> String {
    let doc = ssm_document();
    let lines: Vec<String> = doc["mainSteps"][0]["inputs"]["runCommand"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    let params = doc["parameters"].as_object().unwrap();
    let script = lines.join("\n");
    regex::Regex::new(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
        .unwrap()
        .replace_all(&script, |c: &regex::Captures| {
            let name = &c[1];
            let value = values
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| params[name]["default"].as_str().unwrap().to_string());
            assert!(
                accepted(&params[name], &value),
                "{name}={value:?} would be refused by SSM"
            );
            value
        })
        .into_owned()
}

/// Run the script as the SSM agent's aws:runShellScript does (`sh -c _script.sh`), with
/// `ec2-harden` on PATH when `installed`.
fn run_ssm_script(script: &str, installed: bool) -> (i32, String, String) {
    run_ssm_script_with(script, installed, &[])
}

/// [`run_ssm_script`] with the environment Run Command adds (`AWS_SSM_INSTANCE_ID`, ...).
fn run_ssm_script_with(
    script: &str,
    installed: bool,
    env: &[(&str, String)],
) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    if installed {
        std::os::unix::fs::symlink(agent(), bin.join("ec2-harden")).unwrap();
    }
    let path = dir.path().join("_script.sh");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    let out = output(
        Command::new("sh")
            .arg("-c")
            .arg(&path)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
    );
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn ssm_run_command_runs_the_agent_and_its_exit_code_comes_out() {
    let root = common::fixture("debian-12-hardened");
    let r = root.path().display().to_string();
    // sealed as the bake would, so a run-stage audit of the untouched tree is clean
    let out = output(common::bin().args(["fim", "init", "--root", &r]));
    assert!(out.status.success(), "{}", text(&out));
    let reports = tempfile::tempdir().unwrap();
    let json = reports.path().join("ec2-harden/report.json");
    let extra = format!("--root {r} --offline");
    let json_s = json.display().to_string();
    let base = [
        ("report", "none"),
        ("jsonReport", json_s.as_str()),
        ("extraArgs", extra.as_str()),
    ];

    // clean: exit 0, the text summary on stdout, the full JSON report in jsonReport
    let (code, stdout, stderr) = run_ssm_script(&ssm_script(&base), true);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("stage run") && stdout.contains("PASSED"),
        "{stdout}"
    );
    assert!(stderr.contains("ec2-harden: exit 0"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["stage"], "run", "{report}");

    // a high-severity fault: exit 1 (Run Command marks the invocation Failed)
    apply(
        root.path(),
        "write /etc/ssh/sshd_config.d/10-debug.conf PermitRootLogin yes\\n",
    );
    let (code, stdout, stderr) = run_ssm_script(&ssm_script(&base), true);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("[HIGH] FAIL  ssh-permit-root-login-no"),
        "{stdout}"
    );
    // ... unless failOn says otherwise
    let mut never = base.to_vec();
    never.push(("failOn", "never"));
    let (code, stdout, _) = run_ssm_script(&ssm_script(&never), true);
    assert_eq!(code, 0, "{stdout}");

    // the stage parameter reaches the agent: at bake the image must carry no SSH host keys
    let mut bake = base.to_vec();
    bake.push(("stage", "bake"));
    let (_, stdout, _) = run_ssm_script(&ssm_script(&bake), true);
    assert!(stdout.contains("stage bake"), "{stdout}");

    // a baseline file that is not there: exit 2
    let mut missing = base.to_vec();
    missing.push(("baseline", "/nonexistent/site.toml"));
    let (code, stdout, stderr) = run_ssm_script(&ssm_script(&missing), true);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("/nonexistent/site.toml"), "{stderr}");

    // no agent on the instance: exit 3 with a hint
    let (code, _, stderr) = run_ssm_script(&ssm_script(&base), false);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("ec2-harden is not installed"), "{stderr}");

    // the document's default report=ssm passes --report ssm; outside Run Command (no
    // AWS_SSM_INSTANCE_ID) and without IMDS there is no managed-node id to report for: exit 2
    let online = format!("--root {r}");
    let mut with_ssm: Vec<_> = base
        .iter()
        .copied()
        .filter(|(k, _)| *k != "report" && *k != "extraArgs")
        .collect();
    with_ssm.push(("extraArgs", online.as_str()));
    let (code, _, stderr) = run_ssm_script(&ssm_script(&with_ssm), true);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("SSM reporting: no managed-node id"),
        "{stderr}"
    );

    // under Run Command (its variables set) the same document delivers to SSM: here the local
    // endpoint that holds requests to botocore's model, read back with the AWS CLI
    let ep = common::ssm::SsmEndpoint::start_with(false, true);
    let spool = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, String)> = ep.env();
    env.extend([
        ("AWS_SSM_INSTANCE_ID", "i-0123456789abcdef0".to_string()),
        ("AWS_SSM_REGION_NAME", common::ssm::REGION.to_string()),
        (
            "SSM_COMMAND_ID",
            "3d1f6a2b-7c8e-4f90-a1b2-c3d4e5f60718".to_string(),
        ),
        ("EC2_HARDEN_SPOOL_DIR", spool.path().display().to_string()),
    ]);
    let (code, stdout, stderr) = run_ssm_script_with(&ssm_script(&with_ssm), true, &env);
    assert_eq!(code, 1, "the seeded fault gates: {stdout}{stderr}");
    let items = ep.aws_json(&[
        "ssm",
        "list-compliance-items",
        "--resource-ids",
        "i-0123456789abcdef0",
        "--resource-types",
        "ManagedInstance",
        "--filters",
        "Key=Status,Values=NON_COMPLIANT,Type=EQUAL",
    ]);
    let failing: Vec<&str> = items["ComplianceItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Id"].as_str().unwrap())
        .collect();
    assert!(failing.contains(&"ssh-permit-root-login-no"), "{items}");
    assert_eq!(
        items["ComplianceItems"][0]["ExecutionSummary"]["ExecutionId"],
        "3d1f6a2b-7c8e-4f90-a1b2-c3d4e5f60718"
    );
}

/// A local moto server (the AWS API as moto models it) on a free loopback port.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// The real AWS CLI against this server, with throwaway credentials.
    fn aws(&self, args: &[&str]) -> serde_json::Value {
        let out = output(
            Command::new(venv_bin("aws"))
                .args([
                    "--endpoint-url",
                    &self.url,
                    "--region",
                    "us-east-1",
                    "--output",
                    "json",
                ])
                .args(args)
                .current_dir(repo())
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_PROFILE"),
        );
        assert!(out.status.success(), "aws {args:?}: {}", text(&out));
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("aws {args:?}: {e}: {}", text(&out)))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn ssm_document_and_iam_policy_register_through_the_aws_cli() {
    let moto = Moto::start();
    for (name, format, file) in [
        ("ec2-harden-check", "YAML", "ssm/ec2-harden-check.yaml"),
        ("ec2-harden-check-json", "JSON", "ssm/ec2-harden-check.json"),
    ] {
        let created = moto.aws(&[
            "ssm",
            "create-document",
            "--name",
            name,
            "--document-type",
            "Command",
            "--document-format",
            format,
            "--content",
            &format!("file://{file}"),
        ]);
        let d = &created["DocumentDescription"];
        assert_eq!(d["Status"], "Active", "{created}");
        assert_eq!(d["SchemaVersion"], "2.2", "{created}");
        // (moto does not derive PlatformTypes from the preconditions; the schema test checks them)
        let mut names: Vec<&str> = d["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["Name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "baseline",
                "executionTimeout",
                "extraArgs",
                "failOn",
                "jsonReport",
                "profile",
                "report",
                "stage"
            ]
        );
        // what the service hands back, as JSON, is the document
        let got = moto.aws(&[
            "ssm",
            "get-document",
            "--name",
            name,
            "--document-format",
            "JSON",
        ]);
        let content: serde_json::Value =
            serde_json::from_str(got["Content"].as_str().unwrap()).unwrap();
        assert_eq!(content, ssm_document(), "{name}");
    }
    let policy = moto.aws(&[
        "iam",
        "create-policy",
        "--policy-name",
        "ec2-harden-reporting",
        "--policy-document",
        "file://ssm/iam-policy.json",
    ]);
    assert_eq!(
        policy["Policy"]["PolicyName"], "ec2-harden-reporting",
        "{policy}"
    );
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn state_manager_association_examples_are_valid() {
    // CloudFormation: cfn-lint against the resource specification
    let out = output(
        Command::new(venv_bin("cfn-lint"))
            .arg("ssm/association.cfn.yaml")
            .current_dir(repo()),
    );
    assert!(out.status.success(), "cfn-lint:\n{}", text(&out));

    // CLI: the --cli-input-json file against the SSM API model the AWS CLI itself uses
    let check = r#"
import json, re, sys, botocore.session
from botocore.validate import ParamValidator
op = botocore.session.get_session().get_service_model("ssm").operation_model("CreateAssociation")
params = json.load(open(sys.argv[1]))
report = ParamValidator().validate(params, op.input_shape)
errors = [report.generate_report()] if report.has_errors() else []
def walk(value, shape, path):
    if shape.type_name == "structure":
        for k, v in value.items(): walk(v, shape.members[k], path + "." + k)
    elif shape.type_name == "list":
        for i, v in enumerate(value): walk(v, shape.member, "%s[%d]" % (path, i))
    elif shape.type_name == "map":
        for k, v in value.items(): walk(v, shape.value, path + "." + k)
    elif shape.type_name == "string":
        if shape.enum and value not in shape.enum: errors.append("%s: %r not in %s" % (path, value, shape.enum))
        pattern = shape.metadata.get("pattern")
        try: rx = re.compile(pattern) if pattern else None
        except re.error: rx = None  # a Java-only construct (\p{..}): left to the service
        if rx and not rx.fullmatch(value): errors.append("%s: %r does not match %s" % (path, value, pattern))
walk(params, op.input_shape, "")
print("\n".join(errors)); sys.exit(1 if errors else 0)
"#;
    let cli = repo().join("ssm/association.cli.json");
    let out = output(
        Command::new(venv_bin("python"))
            .args(["-c", check])
            .arg(&cli),
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut bad = json_file(&cli);
    bad["ComplianceSeverity"] = "SEVERE".into();
    let bad_path =
        std::env::temp_dir().join(format!("ec2h-association-{}.json", std::process::id()));
    fs::write(&bad_path, bad.to_string()).unwrap();
    let out = output(
        Command::new(venv_bin("python"))
            .args(["-c", check])
            .arg(&bad_path),
    );
    let _ = fs::remove_file(&bad_path);
    assert!(
        !out.status.success() && text(&out).contains("SEVERE"),
        "{}",
        text(&out)
    );

    // both pass parameters the document declares, with values it accepts
    let doc = ssm_document();
    // (CloudFormation's short-form intrinsics, `!Ref`, as plain values)
    let code = "import json, sys, yaml\n\
class L(yaml.SafeLoader): pass\n\
L.add_multi_constructor('!', lambda l, t, n: l.construct_scalar(n) if isinstance(n, yaml.ScalarNode) else l.construct_sequence(n))\n\
json.dump(yaml.load(open(sys.argv[1]), L), sys.stdout)";
    let out = output(
        Command::new(venv_bin("python"))
            .args(["-c", code])
            .arg(repo().join("ssm/association.cfn.yaml")),
    );
    assert!(out.status.success(), "{}", text(&out));
    let cfn: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for params in [
        &json_file(&cli)["Parameters"],
        &cfn["Resources"]["HardeningAudit"]["Properties"]["Parameters"],
    ] {
        for (name, values) in params.as_object().unwrap() {
            let p = &doc["parameters"][name];
            assert!(p.is_object(), "the document has no parameter {name}");
            for v in values.as_array().unwrap() {
                assert!(
                    accepted(p, v.as_str().unwrap()),
                    "{name}={v} is refused by the document"
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// cloud-init

/// cloud-init's own view of a user-data file (Debian's cloud-init Python package): the top-level
/// keys the schema knows, the file's keys, and the runcmd script exactly as cloud-init writes it.
fn cloud_init_view(path: &Path) -> serde_json::Value {
    let code = r#"
import json, sys, yaml
from cloudinit import util
from cloudinit.config.schema import get_schema
schema = get_schema()
known = set()
for ref in schema["allOf"]:
    known.update(schema["$defs"][ref["$ref"].rsplit("/", 1)[1]].get("properties", {}))
config = yaml.safe_load(open(sys.argv[1]))
json.dump({"known": sorted(known), "keys": sorted(config), "runcmd": util.shellify(config.get("runcmd", [])),
           "files": config.get("write_files", [])}, sys.stdout)
"#;
    let out = output(
        Command::new("/usr/bin/python3")
            .args(["-c", code])
            .arg(path),
    );
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cloud_init_schema(path: &Path) -> Output {
    output(
        Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(path),
    )
}

fn unknown_top_level_keys(view: &serde_json::Value) -> Vec<String> {
    let known: Vec<&str> = view["known"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    view["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .filter(|k| !known.contains(&k.as_str()))
        .collect()
}

#[test]
#[ignore = "needs tools: cloud-init"]
fn cloud_init_user_data_passes_cloud_init_schema_and_knows_its_keys() {
    let user_data = repo().join("cloud-init/user-data.yaml");
    let out = cloud_init_schema(&user_data);
    assert!(
        out.status.success() && text(&out).contains("Valid cloud-config"),
        "{}",
        text(&out)
    );
    let content = fs::read_to_string(&user_data).unwrap();
    assert!(content.starts_with("#cloud-config\n"));
    assert!(content.len() < 16 * 1024, "user data is limited to 16 KB");

    // cloud-init schema does not reject unknown top-level keys, so check them against the schema
    let view = cloud_init_view(&user_data);
    assert!(view["known"].as_array().unwrap().len() > 50, "{view}");
    assert_eq!(unknown_top_level_keys(&view), Vec::<String>::new());
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.yaml");
    fs::write(&typo, content.replace("\nruncmd:", "\nruncmds:")).unwrap();
    assert!(
        cloud_init_schema(&typo).status.success(),
        "cloud-init now rejects unknown keys itself"
    );
    assert_eq!(unknown_top_level_keys(&cloud_init_view(&typo)), ["runcmds"]);
    // and a schema error is one
    let bad = dir.path().join("bad.yaml");
    fs::write(
        &bad,
        content.replace("permissions: \"0755\"", "permissions: [0755]"),
    )
    .unwrap();
    assert!(
        !cloud_init_schema(&bad).status.success(),
        "cloud-init schema accepted a bad write_files mode"
    );

    // what write_files installs: a baseline the agent accepts and a shell script sh can parse
    for file in view["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        let local = dir
            .path()
            .join(path.trim_start_matches('/').replace('/', "_"));
        fs::write(&local, file["content"].as_str().unwrap()).unwrap();
        let out = if path.ends_with(".toml") {
            output(common::bin().args(["baseline", "validate"]).arg(&local))
        } else {
            output(Command::new("sh").arg("-n").arg(&local))
        };
        assert!(out.status.success(), "{path}: {}", text(&out));
    }

    // the runcmd script as cloud-init writes it (no `set -e`), run with the agent installed (an
    // AMI that already has it): the installer keeps it, and the agent audits this host at stage
    // boot with the site baseline write_files installs, writes its JSON report, and then wants to
    // report to SSM: with IMDS disabled and outside Run Command there is no managed-node id, so it
    // stops with exit 2 and says why (tests/ssm.rs delivers for real to the local SSM endpoint).
    let script = view["runcmd"].as_str().unwrap();
    assert!(
        script.starts_with("#!/bin/sh\n") && !script.contains("set -e"),
        "{script}"
    );
    assert!(
        script.contains("'ec2-harden' 'check' '--stage' 'boot'"),
        "{script}"
    );
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(agent(), bin.join("ec2-harden")).unwrap();
    let installer = view["files"].as_array().unwrap()[0]["content"]
        .as_str()
        .unwrap();
    fs::write(bin.join("ec2-harden-install"), installer).unwrap();
    fs::set_permissions(
        bin.join("ec2-harden-install"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let logs = dir.path().join("log");
    let script = script
        .replace(
            "'/usr/local/sbin/ec2-harden-install'",
            "'ec2-harden-install'",
        )
        .replace("/var/log/ec2-harden", &logs.display().to_string())
        .replace(
            "'/etc/ec2-harden/site.toml'",
            &format!(
                "'{}'",
                dir.path().join("etc_ec2-harden_site.toml").display()
            ),
        );
    let out = output(
        Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("EC2_HARDEN_SPOOL_DIR", dir.path().join("spool")),
    );
    let log = text(&out);
    assert!(
        log.contains("ec2-harden-install: using the installed agent"),
        "{log}"
    );
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("SSM reporting: no managed-node id"), "{log}");
    assert!(logs.is_dir(), "the runcmd line before the failing one ran");
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(logs.join("boot.json")).unwrap()).unwrap();
    assert_eq!(report["stage"], "boot");
}

#[test]
#[ignore = "needs tools: cloud-init"]
fn cloud_init_multipart_example_carries_the_script_and_the_cloud_config() {
    let code = r#"
import email, json, sys
msg = email.message_from_bytes(open(sys.argv[1], "rb").read())
parts = [{"type": p.get_content_type(), "name": p.get_filename(), "body": p.get_payload(decode=True).decode()}
         for p in msg.walk() if not p.is_multipart()]
json.dump({"type": msg.get_content_type(), "parts": parts}, sys.stdout)
"#;
    let parse = |path: &Path| -> serde_json::Value {
        let out = output(
            Command::new("/usr/bin/python3")
                .args(["-c", code])
                .arg(path),
        );
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let example = repo().join("cloud-init/user-data-multipart.txt");
    assert!(fs::metadata(&example).unwrap().len() < 16 * 1024);
    let ours = parse(&example);
    // the same parts cloud-init's own make-mime produces from the two files
    let out = output(
        Command::new("cloud-init")
            .current_dir(repo().join("cloud-init"))
            .args([
                "devel",
                "make-mime",
                "-a",
                "existing-script.sh:x-shellscript",
                "-a",
                "user-data.yaml:cloud-config",
            ]),
    );
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("made.txt");
    fs::write(&made, &out.stdout).unwrap();
    assert_eq!(
        ours,
        parse(&made),
        "user-data-multipart.txt differs from cloud-init devel make-mime"
    );
    assert_eq!(ours["type"], "multipart/mixed");
    let parts = ours["parts"].as_array().unwrap();
    assert_eq!(parts[0]["type"], "text/x-shellscript");
    assert_eq!(parts[1]["type"], "text/cloud-config");
    let config = dir.path().join("part.yaml");
    fs::write(&config, parts[1]["body"].as_str().unwrap()).unwrap();
    let out = cloud_init_schema(&config);
    assert!(out.status.success(), "{}", text(&out));
    let script = dir.path().join("part.sh");
    fs::write(&script, parts[0]["body"].as_str().unwrap()).unwrap();
    let out = output(Command::new("bash").arg("-n").arg(&script));
    assert!(out.status.success(), "{}", text(&out));
}

// ------------------------------------------------------------------------------------------------
// systemd

#[test]
#[ignore = "needs tools: systemd-analyze"]
fn systemd_units_pass_systemd_analyze_verify() {
    // a root with systemd's own units, the agent where ExecStart= expects it, and ours
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
    fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
    let out = output(
        Command::new("cp")
            .args(["-a", "/usr/lib/systemd/system"])
            .arg(r.join("usr/lib/systemd")),
    );
    assert!(out.status.success(), "{}", text(&out));
    fs::create_dir_all(r.join("usr/local/bin")).unwrap();
    fs::copy(agent(), r.join("usr/local/bin/ec2-harden")).unwrap();
    for unit in ["ec2-harden.service", "ec2-harden.timer"] {
        fs::copy(
            repo().join("systemd").join(unit),
            r.join("etc/systemd/system").join(unit),
        )
        .unwrap();
    }
    let verify = |units: &[&str]| {
        output(
            Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(format!("--root={}", r.display()))
                .args(units),
        )
    };
    let out = verify(&["ec2-harden.service", "ec2-harden.timer"]);
    // systemd-analyze reports bad settings on stderr and still exits 0: both must be clean
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "{}",
        text(&out)
    );
    // it does catch a broken setting
    let timer = r.join("etc/systemd/system/ec2-harden.timer");
    let good = fs::read_to_string(&timer).unwrap();
    fs::write(
        &timer,
        good.replace("OnBootSec=10min", "OnBootSec=10 fortnights"),
    )
    .unwrap();
    let out = verify(&["ec2-harden.timer"]);
    assert!(
        text(&out).contains("Failed to parse timer value"),
        "{}",
        text(&out)
    );
    fs::write(&timer, good).unwrap();

    // enabling it the offline way (as an image build would) hooks it into timers.target
    let out = output(
        Command::new("systemctl")
            .arg(format!("--root={}", r.display()))
            .args(["enable", "ec2-harden.timer"]),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(r
        .join("etc/systemd/system/timers.target.wants/ec2-harden.timer")
        .is_symlink());
    let out = output(Command::new("systemd-analyze").args(["calendar", "*-*-* 00/6:00:00"]));
    assert!(out.status.success(), "{}", text(&out));

    // the service runs the documented command line
    let service = fs::read_to_string(repo().join("systemd/ec2-harden.service")).unwrap();
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert!(
        exec.starts_with(
            "/usr/local/bin/ec2-harden check --stage run --profile ${EC2_HARDEN_PROFILE} --report ssm "
        ),
        "{exec}"
    );
    // the profile defaults to ec2; /etc/default/ec2-harden may choose a CIS level
    assert!(service
        .lines()
        .any(|l| l == "Environment=EC2_HARDEN_PROFILE=ec2"));
}

#[test]
#[ignore = "needs tools: the Python venv target/venv (awscli, moto)"]
fn image_builder_component_is_well_formed_and_its_arguments_run() {
    let c = yaml(&repo().join("packer/image-builder/ec2-harden-component.yaml"));
    assert_eq!(c["schemaVersion"], 1.0);
    assert_eq!(c["name"], "ec2-harden");
    let params: Vec<(String, String)> = c["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p.as_object().unwrap().iter())
        .map(|(k, v)| {
            assert_eq!(v["type"], "string", "{k}");
            (k.clone(), v["default"].as_str().unwrap().to_string())
        })
        .collect();
    let known = ["S3Download", "ExecuteBash", "ExecuteBinary"];
    let phases = c["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["build", "validate"]);
    let step_name = regex::Regex::new("^[A-Za-z][A-Za-z0-9]*$").unwrap();
    let mut steps = vec![];
    for phase in phases {
        for step in phase["steps"].as_array().unwrap() {
            let action = step["action"].as_str().unwrap();
            assert!(known.contains(&action), "unknown action {action}");
            assert!(step_name.is_match(step["name"].as_str().unwrap()));
            for r in param_refs(&step["inputs"].to_string()) {
                assert!(
                    params.iter().any(|(k, _)| *k == r),
                    "{{{{ {r} }}}} is not a parameter"
                );
            }
            steps.push(step.clone());
        }
    }
    let bash: String = steps
        .iter()
        .filter(|s| s["action"] == "ExecuteBash")
        .flat_map(|s| s["inputs"]["commands"].as_array().unwrap().iter())
        .map(|l| format!("{}\n", l.as_str().unwrap()))
        .collect();
    let out = output(Command::new("bash").args(["-n", "-c", &bash]));
    assert!(out.status.success(), "{}", text(&out));

    // the ExecuteBinary arguments, with the parameters' defaults, are a check the agent runs at
    // stage bake (here on a fixture root, writing the JUnit report to a temp file)
    let audit = steps
        .iter()
        .find(|s| s["action"] == "ExecuteBinary")
        .unwrap();
    assert_eq!(audit["inputs"]["path"], "/usr/local/bin/ec2-harden");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("bake.xml");
    let args: Vec<String> = audit["inputs"]["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut a = a.as_str().unwrap().to_string();
            for (k, v) in &params {
                a = a.replace(&format!("{{{{ {k} }}}}"), v);
            }
            if a == "/var/log/ec2-harden/bake.xml" {
                report.display().to_string()
            } else {
                a
            }
        })
        .collect();
    assert_eq!(args[..3], ["check", "--stage", "bake"]);
    let root = common::fixture("debian-12-image");
    let out = output(common::bin().args(&args).arg("--root").arg(root.path()));
    // the fixture is an image with builder leftovers: exit 1 fails the step, and the report is there
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(fs::read_to_string(&report).unwrap().contains("<testsuites"));
}
