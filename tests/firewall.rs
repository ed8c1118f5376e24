//! The firewall family against real netfilter: each test makes a private network namespace
//! (`ip netns add ec2h-fw-<pid>-<n>`, removed on drop), loads a ruleset into it with
//! `ip netns exec NS nft -f FILE` (or iptables-nft), and runs the binary inside it with
//! `ip netns exec NS ec2-harden check --only firewall`, so the agent's `nft -j list ruleset` and
//! `iptables-save` read that namespace and never the host's ruleset. The active IMDS probe is
//! tested there too: 169.254.169.254/32 on the namespace's `lo`, a tiny HTTP server bound to it,
//! root gets through and uid 65534 does not. Also: the boot-time configuration judged on fixture
//! trees (nftables.conf with includes, netfilter-persistent and iptables-services rules files).
//!
//! Needs root, `ip` (iproute2), `nft` (nftables), `iptables` and `python3`; tests/run.sh
//! installs them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{apply, check_json, fixture, result, status};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A private network namespace, deleted on drop (with anything still running in it killed first).
struct Netns {
    name: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (tests/run.sh installs iproute2 and nftables)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn new() -> Netns {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the netns tests need root (ip netns add)"
        );
        let name = format!(
            "ec2h-fw-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        sh("ip", &["netns", "add", &name]);
        let ns = Netns {
            name,
            dir: tempfile::tempdir().expect("temp dir"),
            children: Vec::new(),
        };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn exec_ok(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        sh("ip", &all);
    }

    /// Load an nft ruleset (in `nft -f` syntax) into the namespace.
    fn nft(&self, ruleset: &str) {
        let file = self.dir.path().join(format!(
            "ruleset-{}.nft",
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&file, ruleset).unwrap();
        self.exec_ok(&["nft", "-f", file.to_str().unwrap()]);
    }

    /// `ec2-harden check --only firewall --format json ARGS` inside the namespace, on `/`.
    fn check(&self, bin: &Path, args: &[&str]) -> serde_json::Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(bin)
            .args([
                "check",
                "--only",
                "firewall",
                "--format",
                "json",
                "--fail-on",
                "never",
            ])
            .args(args)
            .env_remove("EC2_HARDEN_LOG")
            .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
            .output()
            .expect("ip netns exec ec2-harden");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "stderr:\n{}\nstdout:\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    }

    /// Put IMDS's address on `lo` and serve HTTP on it from inside the namespace.
    fn imds_server(&mut self) {
        self.exec_ok(&["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"]);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args([
                "python3",
                "-m",
                "http.server",
                "--bind",
                "169.254.169.254",
                "80",
            ])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server");
        self.children.push(child);
        // wait until it listens (root's connection, made from the namespace)
        let start = Instant::now();
        loop {
            let ok = Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args([
                    "python3",
                    "-c",
                    "import socket; socket.create_connection(('169.254.169.254', 80), 1)",
                ])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the test IMDS server never listened"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The binary, copied where every uid may execute it (uid 65534 re-runs it for the probe).
fn public_bin() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("ec2h-fw-bin-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("ec2-harden");
    std::fs::copy(env!("CARGO_BIN_EXE_ec2-harden"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, bin)
}

fn evidence_text(report: &serde_json::Value, id: &str) -> String {
    let r = result(report, id);
    let mut s = String::new();
    for e in r["evidence"].as_array().into_iter().flatten() {
        s.push_str(e["message"].as_str().unwrap_or(""));
        s.push_str(" | ");
        s.push_str(e["found"].as_str().unwrap_or(""));
        s.push('\n');
    }
    for k in ["reason", "cause"] {
        if let Some(t) = r[k].as_str() {
            s.push_str(t);
        }
    }
    s
}

const IMDS_NFT: &str = "table inet imds {\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tmeta skuid != 0 ip daddr 169.254.169.254 counter reject\n\t}\n}\n";

const INPUT_DROP: &str = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tiif \"lo\" accept\n\t\tct state established,related accept\n\t\ttcp dport 22 accept\n\t}\n}\n";

#[test]
#[ignore = "needs root, tools: a network namespace with nftables/iptables"]
fn no_ruleset_restricts_nothing_and_accepts_everything() {
    let (_d, bin) = public_bin();
    let ns = Netns::new();
    let r = ns.check(&bin, &[]);
    assert_eq!(r["host"]["root"], "/");
    assert_eq!(status(&r, "firewall-imds-restricted"), "fail");
    let ev = evidence_text(&r, "firewall-imds-restricted");
    assert!(ev.contains("the live ruleset"), "{ev}");
    assert!(ev.contains("uid 65534"), "{ev}");
    assert_eq!(status(&r, "firewall-input-default-deny"), "fail");
    let ev = evidence_text(&r, "firewall-input-default-deny");
    assert!(ev.contains("no input chain"), "{ev}");
    assert!(ev.contains("security groups"), "{ev}");
    // nothing drops, so loopback and replies get through
    assert_eq!(status(&r, "firewall-input-loopback-accepted"), "pass");
    assert_eq!(status(&r, "firewall-input-established-accepted"), "pass");
    assert_eq!(status(&r, "firewall-imds-probe"), "not-applicable");
}

#[test]
#[ignore = "needs root, tools: a network namespace with nftables/iptables"]
fn meta_skuid_restriction_passes() {
    let (_d, bin) = public_bin();
    let ns = Netns::new();
    ns.nft(IMDS_NFT);
    let r = ns.check(&bin, &[]);
    assert_eq!(
        status(&r, "firewall-imds-restricted"),
        "pass",
        "{}",
        evidence_text(&r, "firewall-imds-restricted")
    );
    let ev = evidence_text(&r, "firewall-imds-restricted");
    assert!(ev.contains("nft inet imds output"), "{ev}");
    assert!(ev.contains("meta skuid != 0"), "{ev}");
    // the same restriction with a named set of allowed uids: one more than the baseline allows
    // is caught, exactly the baseline's passes
    let ns = Netns::new();
    ns.nft("table inet imds {\n\tset allowed {\n\t\ttype uid\n\t\telements = { 0, 998 }\n\t}\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr 169.254.169.254 meta skuid != @allowed drop\n\t}\n}\n");
    let r = ns.check(&bin, &[]);
    let ev = evidence_text(&r, "firewall-imds-restricted");
    assert_eq!(status(&r, "firewall-imds-restricted"), "fail", "{ev}");
    assert!(ev.contains("uid 998"), "{ev}");
    assert!(!ev.contains("uid 65534"), "{ev}");
    let ns = Netns::new();
    ns.nft("table inet imds {\n\tset allowed {\n\t\ttype uid\n\t\telements = { 0 }\n\t}\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr 169.254.169.254 meta skuid != @allowed drop\n\t}\n}\n");
    let r = ns.check(&bin, &[]);
    let ev = evidence_text(&r, "firewall-imds-restricted");
    assert_eq!(status(&r, "firewall-imds-restricted"), "pass", "{ev}");
}

#[test]
#[ignore = "needs root, tools: a network namespace with nftables/iptables"]
fn aws_documented_iptables_uid_owner_rule_passes() {
    let (_d, bin) = public_bin();
    let ns = Netns::new();
    // the AWS user guide's rule, through iptables (the nft back-end on Debian 12)
    ns.exec_ok(&[
        "iptables",
        "--append",
        "OUTPUT",
        "--proto",
        "tcp",
        "--destination",
        "169.254.169.254",
        "--match",
        "owner",
        "!",
        "--uid-owner",
        "root",
        "--jump",
        "REJECT",
    ]);
    let r = ns.check(&bin, &[]);
    let ev = evidence_text(&r, "firewall-imds-restricted");
    assert_eq!(status(&r, "firewall-imds-restricted"), "pass", "{ev}");
    assert!(ev.contains("--uid-owner"), "{ev}");
}

#[test]
#[ignore = "needs root, tools: a network namespace with nftables/iptables"]
fn a_rule_that_only_logs_or_names_the_wrong_address_fails() {
    let (_d, bin) = public_bin();
    let ns = Netns::new();
    ns.nft("table inet imds {\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tmeta skuid != 0 ip daddr 169.254.169.254 log prefix \"imds \" counter\n\t}\n}\n");
    let r = ns.check(&bin, &[]);
    assert_eq!(status(&r, "firewall-imds-restricted"), "fail");
    let ev = evidence_text(&r, "firewall-imds-restricted");
    assert!(ev.contains("gets through"), "{ev}");

    let ns = Netns::new();
    ns.nft("table inet imds {\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tmeta skuid != 0 ip daddr 169.254.169.253 reject\n\t}\n}\n");
    let r = ns.check(&bin, &[]);
    assert_eq!(status(&r, "firewall-imds-restricted"), "fail");
}

#[test]
#[ignore = "needs root, tools: a network namespace with nftables/iptables"]
fn input_policy_accept_fails_and_drop_passes() {
    let (_d, bin) = public_bin();
    let ns = Netns::new();
    ns.nft("table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiif \"lo\" accept\n\t}\n}\n");
    let r = ns.check(&bin, &[]);
    assert_eq!(status(&r, "firewall-input-default-deny"), "fail");
    let ev = evidence_text(&r, "firewall-input-default-deny");
    assert!(ev.contains("nft inet filter input: policy accept"), "{ev}");

    let ns = Netns::new();
    ns.nft(INPUT_DROP);
    let r = ns.check(&bin, &[]);
    for id in [
        "firewall-input-default-deny",
        "firewall-input-loopback-accepted",
        "firewall-input-established-accepted",
    ] {
        assert_eq!(status(&r, id), "pass", "{id}: {}", evidence_text(&r, id));
    }
    let ev = evidence_text(&r, "firewall-input-default-deny");
    assert!(ev.contains("policy drop"), "{ev}");
    assert!(ev.contains("tcp/22 from the internet is accepted"), "{ev}");

    // drop without accepting loopback and replies first
    let ns = Netns::new();
    ns.nft("table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 22 accept\n\t}\n}\n");
    let r = ns.check(&bin, &[]);
    assert_eq!(status(&r, "firewall-input-default-deny"), "pass");
    assert_eq!(status(&r, "firewall-input-loopback-accepted"), "fail");
    assert_eq!(status(&r, "firewall-input-established-accepted"), "fail");
}

#[test]
#[ignore = "needs root, tools: a network namespace with nftables/iptables"]
fn active_probe_root_gets_through_and_nobody_is_refused() {
    let (_d, bin) = public_bin();
    let mut ns = Netns::new();
    ns.imds_server();
    // without a restriction, uid 65534 reaches IMDS: the probe proves the failure
    let r = ns.check(&bin, &["--active-probes"]);
    let ev = evidence_text(&r, "firewall-imds-probe");
    assert_eq!(status(&r, "firewall-imds-probe"), "fail", "{ev}");
    assert!(
        ev.contains("as uid 65534 (nobody): tcp connect to 169.254.169.254:80: connected"),
        "{ev}"
    );
    assert!(
        ev.contains("as root (uid 0): tcp connect to 169.254.169.254:80: connected"),
        "{ev}"
    );

    // with the restriction, root still gets through and nobody is refused
    ns.nft(IMDS_NFT);
    let r = ns.check(&bin, &["--active-probes"]);
    let ev = evidence_text(&r, "firewall-imds-probe");
    assert_eq!(status(&r, "firewall-imds-probe"), "pass", "{ev}");
    assert!(
        ev.contains("as root (uid 0): tcp connect to 169.254.169.254:80: connected"),
        "{ev}"
    );
    assert!(ev.contains("as uid 65534 (nobody)"), "{ev}");
    assert!(
        !ev.contains("65534 (nobody): tcp connect to 169.254.169.254:80: connected"),
        "{ev}"
    );
    assert_eq!(status(&r, "firewall-imds-restricted"), "pass");

    // AWS_EC2_METADATA_SERVICE_ENDPOINT is honoured: nothing listens on port 8080, so even root
    // cannot connect and the probe proves nothing
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&bin)
        .args([
            "check",
            "--only",
            "firewall",
            "--format",
            "json",
            "--fail-on",
            "never",
            "--active-probes",
        ])
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            "http://169.254.169.254:8080",
        )
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ev = evidence_text(&r, "firewall-imds-probe");
    assert_eq!(status(&r, "firewall-imds-probe"), "not-applicable", "{ev}");
    assert!(ev.contains("169.254.169.254:8080"), "{ev}");
    assert!(ev.contains("did not accept root's connection"), "{ev}");
}

#[test]
fn active_probes_are_off_by_default_and_never_on_an_image() {
    let root = fixture("debian-12-hardened");
    let (_, r, _) = check_json(root.path(), &["--only", "firewall", "--active-probes"]);
    let ev = evidence_text(&r, "firewall-imds-probe");
    assert_eq!(status(&r, "firewall-imds-probe"), "not-applicable");
    assert!(ev.contains("sysroot is not /"), "{ev}");
}

// ---------------------------------------------------------------------------------------------
// The boot-time configuration on fixture trees (offline images)

fn fw(root: &Path) -> serde_json::Value {
    check_json(root, &["--only", "firewall", "--fail-on", "never"]).1
}

#[test]
fn image_is_judged_on_the_nftables_configuration_with_includes() {
    let root = fixture("debian-12-hardened");
    let r = fw(root.path());
    for id in [
        "firewall-imds-restricted",
        "firewall-imds-restriction-persistent",
        "firewall-input-default-deny",
        "firewall-input-loopback-accepted",
        "firewall-input-established-accepted",
    ] {
        assert_eq!(status(&r, id), "pass", "{id}: {}", evidence_text(&r, id));
        let ev = evidence_text(&r, id);
        assert!(
            ev.contains(
                "the configuration loaded at boot (nftables.service loads /etc/nftables.conf)"
            ),
            "{id}: {ev}"
        );
    }
    // the IMDS rule moved to an included file still counts; a missing include makes nft -f fail
    apply(
        root.path(),
        "write /etc/nftables.conf include \"/etc/nftables.d/*.nft\"\\n\nwrite /etc/nftables.d/imds.nft table inet imds {\\n chain output {\\n  type filter hook output priority 0; policy accept;\\n  meta skuid != root ip daddr 169.254.169.254 reject\\n }\\n}\\n",
    );
    let r = fw(root.path());
    assert_eq!(status(&r, "firewall-imds-restriction-persistent"), "pass");
    assert_eq!(status(&r, "firewall-input-default-deny"), "fail");
    apply(
        root.path(),
        "write /etc/nftables.conf include \"/etc/nftables-missing.nft\"\\n",
    );
    let r = fw(root.path());
    assert_eq!(status(&r, "firewall-imds-restriction-persistent"), "error");
    assert!(
        evidence_text(&r, "firewall-imds-restriction-persistent").contains("nftables-missing.nft"),
    );
    // nftables.service not enabled: the file is not loaded at boot
    let root = fixture("debian-12-hardened");
    apply(
        root.path(),
        "rm /etc/systemd/system/sysinit.target.wants/nftables.service",
    );
    let r = fw(root.path());
    assert_eq!(status(&r, "firewall-imds-restriction-persistent"), "fail");
    assert!(evidence_text(&r, "firewall-imds-restriction-persistent")
        .contains("nothing loads firewall rules at boot"));
}

const RULES_V4: &str = "# Generated by iptables-save v1.8.9 (nf_tables)\\n*filter\\n:INPUT DROP [0:0]\\n:FORWARD DROP [0:0]\\n:OUTPUT ACCEPT [0:0]\\n-A INPUT -i lo -j ACCEPT\\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\\n-A OUTPUT -d 169.254.169.254/32 -p tcp -m owner ! --uid-owner 0 -j REJECT --reject-with icmp-port-unreachable\\nCOMMIT\\n";
const RULES_V6: &str = "*filter\\n:INPUT DROP [0:0]\\n:FORWARD DROP [0:0]\\n:OUTPUT ACCEPT [0:0]\\n-A INPUT -i lo -j ACCEPT\\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\\nCOMMIT\\n";

#[test]
fn image_is_judged_on_netfilter_persistent_and_iptables_services_files() {
    // Debian/Ubuntu: iptables-persistent's rules files, loaded by netfilter-persistent.service
    let root = fixture("debian-12-default");
    apply(
        root.path(),
        &format!("write /lib/systemd/system/netfilter-persistent.service [Unit]\\nDescription=netfilter persistent configuration\\n[Service]\\nType=oneshot\\nExecStart=/usr/sbin/netfilter-persistent start\\n[Install]\\nWantedBy=multi-user.target\\n\nsymlink /lib/systemd/system/netfilter-persistent.service /etc/systemd/system/multi-user.target.wants/netfilter-persistent.service\nwrite /etc/iptables/rules.v4 {RULES_V4}\nwrite /etc/iptables/rules.v6 {RULES_V6}"),
    );
    let r = fw(root.path());
    for id in [
        "firewall-imds-restricted",
        "firewall-imds-restriction-persistent",
        "firewall-input-default-deny",
        "firewall-input-loopback-accepted",
        "firewall-input-established-accepted",
    ] {
        assert_eq!(status(&r, id), "pass", "{id}: {}", evidence_text(&r, id));
    }
    assert!(evidence_text(&r, "firewall-imds-restricted")
        .contains("netfilter-persistent.service loads /etc/iptables/rules.v4"));
    // the rule only logs: not a restriction
    apply(
        root.path(),
        &format!(
            "write /etc/iptables/rules.v4 {}",
            RULES_V4.replace(
                "-j REJECT --reject-with icmp-port-unreachable",
                "-j LOG --log-prefix imds"
            )
        ),
    );
    let r = fw(root.path());
    assert_eq!(status(&r, "firewall-imds-restriction-persistent"), "fail");

    // RHEL: iptables-services' /etc/sysconfig/iptables
    let root = fixture("rhel-9-default");
    apply(
        root.path(),
        &format!("write /usr/lib/systemd/system/iptables.service [Unit]\\nDescription=IPv4 firewall with iptables\\n[Service]\\nType=oneshot\\nExecStart=/usr/libexec/iptables/iptables.init start\\n[Install]\\nWantedBy=multi-user.target\\n\nsymlink /usr/lib/systemd/system/iptables.service /etc/systemd/system/multi-user.target.wants/iptables.service\nwrite /etc/sysconfig/iptables {RULES_V4}"),
    );
    let r = fw(root.path());
    assert_eq!(status(&r, "firewall-imds-restriction-persistent"), "pass");
    // no ip6tables.service: IPv6 input is not filtered at boot
    assert_eq!(status(&r, "firewall-input-default-deny"), "fail");
    let ev = evidence_text(&r, "firewall-input-default-deny");
    assert!(ev.contains("no IPv6 input chain"), "{ev}");
    assert!(!ev.contains("no IPv4 input chain"), "{ev}");
}

#[test]
fn firewalld_and_ufw_images_are_judged_on_their_own_configuration() {
    // the hardened RHEL image: firewalld's public zone and a direct rule for IMDS
    let root = fixture("rhel-9-hardened");
    let r = fw(root.path());
    let ev = evidence_text(&r, "firewall-imds-restricted");
    assert_eq!(status(&r, "firewall-imds-restricted"), "pass", "{ev}");
    assert!(ev.contains("/etc/firewalld/direct.xml"), "{ev}");
    assert_eq!(status(&r, "firewall-input-default-deny"), "pass");
    // a trusted default zone accepts everything
    apply(
        root.path(),
        "write /etc/firewalld/firewalld.conf DefaultZone=trusted\\n",
    );
    let r = fw(root.path());
    assert_eq!(status(&r, "firewall-input-default-deny"), "fail");

    // the hardened Ubuntu image: ufw's before.rules with the IMDS rule, DEFAULT_INPUT_POLICY=DROP
    let root = fixture("ubuntu-22.04-hardened");
    let r = fw(root.path());
    for id in [
        "firewall-imds-restricted",
        "firewall-input-default-deny",
        "firewall-input-loopback-accepted",
        "firewall-input-established-accepted",
    ] {
        assert_eq!(status(&r, id), "pass", "{id}: {}", evidence_text(&r, id));
    }
    apply(
        root.path(),
        "write /etc/default/ufw IPV6=yes\\nDEFAULT_INPUT_POLICY=\"ACCEPT\"\\n",
    );
    let r = fw(root.path());
    assert_eq!(status(&r, "firewall-input-default-deny"), "fail");
}

#[test]
#[ignore = "needs root, tools: a network namespace with nftables/iptables"]
fn a_live_host_at_bake_is_judged_on_its_boot_configuration() {
    // the build instance's own ruleset is not what the image carries: stage bake on `/` reads
    // the configuration files, and says so
    let (_d, bin) = public_bin();
    let ns = Netns::new();
    ns.nft(IMDS_NFT);
    let r = ns.check(&bin, &["--stage", "bake"]);
    let ev = evidence_text(&r, "firewall-imds-restricted");
    assert!(ev.contains("the configuration loaded at boot"), "{ev}");
    assert!(!ev.contains("the live ruleset"), "{ev}");
}
