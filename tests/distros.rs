//! The distro layers on fixture trees of each distribution's EC2 image as it ships (offline images:
//! the AMI's root volume before first boot) and after the documented hardening: auto-selection from
//! os-release, the exact rules a stock image fails, a clean hardened image, the vendor image's
//! hygiene at bake, and seeded faults each caught by the rule meant for them.

mod common;

use common::{apply, check_json, findings, fixture, ids_with, result, status};

struct Distro {
    /// Fixture prefix: `<name>-default`, `<name>-hardened`.
    name: &'static str,
    baseline: &'static str,
    os_id: &'static str,
    /// Families beyond [`FAMILIES`] this layer adds (e.g. `packages` on the rpm distros).
    extra_families: &'static [&'static str],
    /// What the stock image fails is the snapshot `tests/snapshots/distros__<name>-stock.snap`.
    hardened_not_applicable: &'static [&'static str],
    /// (fixture ops on the hardened tree, the rules that must fail — exactly, one per line)
    faults: &'static [(&'static str, &'static str)],
}

/// The families the common rules and the distro layers speak for (every family but `patch`:
/// patch-level rules need a package database these images do not carry, and have their own tests).
const FAMILIES: &str =
    "files,accounts,ssh,kernel,services,logging,firewall,banners,filesystems,access-control";

impl Distro {
    /// [`FAMILIES`] plus the families only this layer has.
    fn families(&self) -> String {
        [FAMILIES]
            .iter()
            .chain(self.extra_families)
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// For each (os-release text, `\n` escapes for its newlines; baseline name): the baseline a check of
/// the fixture `base` selects once its `/usr/lib/os-release` says that.
fn assert_selects(base: &str, cases: &[(String, &str)]) {
    for (os_release, want) in cases {
        let root = fixture(base);
        apply(
            root.path(),
            &format!("rm /usr/lib/os-release\nwrite /usr/lib/os-release {os_release}"),
        );
        let (_, report, _) = check_json(root.path(), &["--only", "ssh"]);
        assert_eq!(report["baseline"]["name"], *want, "{os_release}");
    }
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn stock_image_fails_exactly(d: &Distro) {
    let root = fixture(&format!("{}-default", d.name));
    let (code, report, stderr) = check_json(root.path(), &["--only", &d.families()]);
    assert_eq!(
        code, 1,
        "{}: high findings exit 1; stderr:\n{stderr}",
        d.name
    );
    assert_eq!(report["baseline"]["name"], d.baseline, "auto-selected");
    assert_eq!(report["host"]["os"]["id"], d.os_id);
    assert_eq!(report["host"]["live"], false, "an AMI volume, not a host");
    insta::assert_snapshot!(format!("{}-stock", d.name), findings(&report));
    assert_eq!(
        ids_with(&report, "error"),
        Vec::<String>::new(),
        "{}",
        d.name
    );
    // the vendor's AMI is clean by the image-hygiene rules
    let (_, bake, _) = check_json(root.path(), &["--stage", "bake", "--only", "image-hygiene"]);
    assert_eq!(ids_with(&bake, "fail"), Vec::<String>::new(), "{}", d.name);
    assert!(
        !ids_with(&bake, "pass").is_empty(),
        "{}: hygiene rules ran",
        d.name
    );
}

fn hardened_image_passes(d: &Distro) {
    let root = fixture(&format!("{}-hardened", d.name));
    let (code, report, stderr) =
        check_json(root.path(), &["--fail-on", "low", "--only", &d.families()]);
    assert_eq!(report["baseline"]["name"], d.baseline);
    assert_eq!(
        ids_with(&report, "fail"),
        Vec::<String>::new(),
        "{}: stderr:\n{stderr}",
        d.name
    );
    assert_eq!(
        ids_with(&report, "error"),
        Vec::<String>::new(),
        "{}",
        d.name
    );
    assert_eq!(code, 0, "{}", d.name);
    assert_eq!(
        ids_with(&report, "not-applicable"),
        strings(d.hardened_not_applicable),
        "{}",
        d.name
    );
}

fn seeded_faults_are_caught(d: &Distro) {
    assert!(
        d.faults.len() >= 2,
        "{}: at least two seeded faults",
        d.name
    );
    for (fault, rules) in d.faults {
        let root = fixture(&format!("{}-hardened", d.name));
        apply(root.path(), fault);
        let (_, report, _) = check_json(root.path(), &["--only", &d.families()]);
        let want: Vec<String> = rules.lines().map(str::to_string).collect();
        assert_eq!(
            ids_with(&report, "fail"),
            want,
            "{}: fault `{fault}`",
            d.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Ubuntu 22.04

/// Every rule the hardened Ubuntu images leave not applicable: no host keys in an image, no motd
/// file (Ubuntu builds it with update-motd), no cron/at allow lists, no boot loader config in the
/// tree, /var/tmp and /home not separate mounts, no active probe.
const UBUNTU_HARDENED_NA: &[&str] = &[
    "at-allow-permissions",
    "banner-motd-no-os-leak",
    "cron-allow-permissions",
    "etc-motd-permissions",
    // the active IMDS probe runs only with --active-probes on a live host
    "firewall-imds-probe",
    "grub-cfg-permissions",
    "grub2-cfg-permissions",
    "mount-home-nodev",
    "mount-var-tmp-options",
    "ssh-host-private-key-permissions",
    "ssh-host-public-key-permissions",
];

const UBUNTU_2204: Distro = Distro {
    name: "ubuntu-22.04",
    baseline: "ubuntu-22.04",
    os_id: "ubuntu",
    extra_families: &[],
    // What a stock Ubuntu 22.04 or 24.04 AMI fails: no auditd, no pwquality, no faillock, ufw off,
    // timesyncd on Ubuntu's pool, sshd and kernel defaults, world-readable sshd/cron files.
    hardened_not_applicable: UBUNTU_HARDENED_NA,
    faults: &[
        // a drop-in read before the hardening one wins over it and over the main file
        ("write /etc/ssh/sshd_config.d/50-cloud-init.conf PermitRootLogin yes\\n\nchmod 0600 /etc/ssh/sshd_config.d/50-cloud-init.conf", "ssh-permit-root-login-no"),
        // the cloud image's own drop-in re-enabling passwords, at the position it really has
        ("write /etc/ssh/sshd_config.d/60-cloudimg-settings.conf PasswordAuthentication yes\\n", "ssh-password-authentication-no"),
        ("write /etc/ufw/ufw.conf ENABLED=no\\nLOGLEVEL=low\\n", "firewall-imds-restricted\nfirewall-imds-restriction-persistent\nfirewall-input-default-deny\nufw-enabled"),
        ("write /etc/pam.d/common-auth auth\\t[success=1 default=ignore]\\tpam_unix.so nullok\\nauth\\trequisite\\tpam_deny.so\\n", "pam-faillock-enabled\npam-unix-no-nullok"),
        ("chmod 0644 /etc/shadow", "etc-shadow-permissions"),
        // Ubuntu's kernel default for dmesg_restrict is 1: only an explicit 0 turns it off
        ("write /etc/sysctl.d/99-zz-debug.conf kernel.dmesg_restrict = 0\\n", "sysctl-dmesg-restrict"),
        ("write /etc/systemd/timesyncd.conf.d/60-aws.conf [Time]\\nNTP=ntp.ubuntu.com\\n", "timesyncd-aws-time-source"),
        ("write /etc/rsyslog.d/99-site.conf $FileCreateMode 0644\\n", "rsyslog-file-create-mode"),
        ("rm /etc/systemd/system/sysinit.target.wants/apparmor.service", "service-apparmor-enabled"),
    ],
};

#[test]
#[ignore = "needs root: fixture file owners"]
fn ubuntu_22_04_stock_image_fails_exactly_the_expected_rules() {
    stock_image_fails_exactly(&UBUNTU_2204);
    // evidence points at the cloud image's own drop-in, read before the main file
    let root = fixture("ubuntu-22.04-default");
    let (_, report, _) = check_json(root.path(), &["--only", "ssh"]);
    let ev = &result(&report, "ssh-password-authentication-no")["evidence"][0];
    assert_eq!(
        (ev["path"].as_str(), ev["found"].as_str()),
        (
            Some("/etc/ssh/sshd_config.d/60-cloudimg-settings.conf"),
            Some("no")
        ),
        "{ev}"
    );
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn ubuntu_22_04_hardened_image_passes() {
    hardened_image_passes(&UBUNTU_2204);
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn ubuntu_22_04_seeded_faults_are_caught() {
    seeded_faults_are_caught(&UBUNTU_2204);
}

// ---------------------------------------------------------------------------------------------
// Ubuntu 24.04

const UBUNTU_2404: Distro = Distro {
    name: "ubuntu-24.04",
    baseline: "ubuntu-24.04",
    os_id: "ubuntu",
    extra_families: &[],
    // What a stock Ubuntu 22.04 or 24.04 AMI fails: no auditd, no pwquality, no faillock, ufw off,
    // timesyncd on Ubuntu's pool, sshd and kernel defaults, world-readable sshd/cron files.
    hardened_not_applicable: UBUNTU_HARDENED_NA,
    faults: &[
        // cloud-init's drop-in sorts before the hardening one: its value wins
        ("write /etc/ssh/sshd_config.d/50-cloud-init.conf PermitRootLogin yes\\nPasswordAuthentication yes\\n\nchmod 0600 /etc/ssh/sshd_config.d/50-cloud-init.conf", "ssh-password-authentication-no\nssh-permit-root-login-no"),
        // noble's new userns restriction switched off by a later sysctl.d file
        ("write /etc/sysctl.d/99-zz-containers.conf kernel.apparmor_restrict_unprivileged_userns = 0\\n", "sysctl-apparmor-restrict-unprivileged-userns"),
        ("chown 0:0 /etc/gshadow\nchmod 0644 /etc/gshadow", "etc-gshadow-permissions"),
        ("write /etc/pam.d/common-password password\\t[success=1 default=ignore]\\tpam_unix.so obscure md5\\n", "pam-pwquality-enabled\npam-unix-strong-hash"),
    ],
};

#[test]
#[ignore = "needs root: fixture file owners"]
fn ubuntu_24_04_stock_image_fails_exactly_the_expected_rules() {
    stock_image_fails_exactly(&UBUNTU_2404);
    // socket activation: sshd is enabled through ssh.socket, and the new userns restriction holds
    let root = fixture("ubuntu-24.04-default");
    let (_, report, _) = check_json(root.path(), &["--only", "kernel"]);
    let userns = result(&report, "sysctl-apparmor-restrict-unprivileged-userns");
    assert_eq!(userns["status"], "pass", "{userns}");
    assert_eq!(
        userns["evidence"][0]["path"],
        "/usr/lib/sysctl.d/10-apparmor.conf"
    );
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn ubuntu_24_04_hardened_image_passes() {
    hardened_image_passes(&UBUNTU_2404);
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn ubuntu_24_04_seeded_faults_are_caught() {
    seeded_faults_are_caught(&UBUNTU_2404);
}

// ---------------------------------------------------------------------------------------------
// RHEL 9 (VERSION_ID 9.4 matches the layer's "9"; Rocky and AlmaLinux 9 select it too)

const RHEL_9: Distro = Distro {
    name: "rhel-9",
    baseline: "rhel-9",
    os_id: "rhel",
    extra_families: &["packages"],
    // journald-compress: RHEL's image has no journald.conf drop-ins or main file in this tree
    hardened_not_applicable: &[
        "at-allow-permissions",
        "cron-allow-permissions",
        "firewall-imds-probe",
        "grub-cfg-permissions",
        "grub2-cfg-permissions",
        "journald-compress",
        "mount-home-nodev",
        "mount-var-tmp-options",
        "ssh-host-private-key-permissions",
        "ssh-host-public-key-permissions",
    ],
    faults: &[
        ("chmod 0644 /etc/shadow", "etc-shadow-permissions"),
        // RHEL has no shadow group: Debian's 0640 root:shadow is a fault here
        ("chmod 0640 /etc/gshadow", "etc-gshadow-permissions"),
        // a drop-in sorting before 40-hardening.conf wins over it and over 50-redhat.conf
        ("write /etc/ssh/sshd_config.d/10-legacy.conf PermitRootLogin yes\\n\nchmod 0600 /etc/ssh/sshd_config.d/10-legacy.conf", "ssh-permit-root-login-no"),
        // back to the DEFAULT policy: its sshd back-end offers hmac-sha1 again
        ("write /etc/crypto-policies/config LEGACY\\n\nwrite /etc/crypto-policies/back-ends/opensshserver.config MACs hmac-sha2-256-etm@openssh.com,hmac-sha1\\n", "crypto-policy-not-legacy\nssh-macs-strong"),
        ("write /etc/selinux/config SELINUX=permissive\\nSELINUXTYPE=targeted\\n", "selinux-enforcing"),
        ("write /etc/yum.repos.d/epel.repo [epel]\\nbaseurl=https://example.com/epel\\ngpgcheck=0\\n", "package-repo-gpgcheck-not-disabled"),
        // hand-edited PAM: authselect's link replaced by a file that brings nullok back
        ("rm /etc/pam.d/system-auth\nwrite /etc/pam.d/system-auth auth sufficient pam_unix.so nullok\\nauth required pam_faillock.so authfail\\npassword requisite pam_pwquality.so\\npassword sufficient pam_unix.so sha512 shadow use_authtok\\n", "pam-authselect-managed\npam-unix-no-nullok"),
        ("rm /etc/sysctl.d/60-hardening.conf\nwrite /etc/sysctl.d/60-hardening.conf kernel.kptr_restrict = 1\\n", "sysctl-accept-redirects-default-off\nsysctl-accept-redirects-off\nsysctl-bpf-jit-harden\nsysctl-dmesg-restrict\nsysctl-ipv6-accept-ra-all-off\nsysctl-ipv6-accept-ra-default-off\nsysctl-ipv6-accept-redirects-all-off\nsysctl-ipv6-accept-redirects-default-off\nsysctl-kexec-load-disabled\nsysctl-log-martians-all\nsysctl-log-martians-default\nsysctl-ptrace-scope\nsysctl-rp-filter-all\nsysctl-rp-filter-default\nsysctl-secure-redirects-all-off\nsysctl-secure-redirects-default-off\nsysctl-send-redirects-default-off\nsysctl-send-redirects-off\nsysctl-suid-dumpable-off"),
        ("rm /etc/systemd/system/multi-user.target.wants/firewalld.service", "firewall-imds-restricted\nfirewall-imds-restriction-persistent\nfirewall-input-default-deny\nservice-host-firewall-enabled"),
    ],
};

#[test]
#[ignore = "needs root: fixture file owners"]
fn rhel_9_stock_image_fails_exactly_the_expected_rules() {
    stock_image_fails_exactly(&RHEL_9);
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn rhel_9_hardened_image_passes() {
    hardened_image_passes(&RHEL_9);
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn rhel_9_seeded_faults_are_caught() {
    seeded_faults_are_caught(&RHEL_9);
}

/// A key no sysctl.d file sets takes the kernel's own value at boot. Yama boots with
/// ptrace_scope 1 on Ubuntu's (and RHEL's, Amazon Linux's) kernels, so an image that leaves it
/// unset complies; Debian's kernel boots with 0 (tests/check_fixtures.rs).
#[test]
fn ptrace_scope_left_unset_is_judged_by_the_kernel_default() {
    let root = fixture("ubuntu-24.04-hardened");
    common::drop_lines(
        &root.path().join("etc/sysctl.d/60-hardening.conf"),
        "ptrace_scope",
    );
    apply(root.path(), "rm /etc/sysctl.d/10-ptrace.conf");
    let (_, report, _) = check_json(root.path(), &["--only", "kernel"]);
    let r = result(&report, "sysctl-ptrace-scope");
    assert_eq!(r["status"], "pass", "{r}");
    let ev = &r["evidence"][0];
    assert_eq!(ev["found"], "1", "{r}");
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("the kernel default applies at boot"),
        "{r}"
    );
    // a file that lowers it is still caught
    apply(
        root.path(),
        "write /etc/sysctl.d/99-zz-debug.conf kernel.yama.ptrace_scope = 0\\n",
    );
    let (_, report, _) = check_json(root.path(), &["--only", "kernel"]);
    assert_eq!(status(&report, "sysctl-ptrace-scope"), "fail");
}

/// Point releases match the major version; the RHEL rebuilds select the same layer; RHEL 8 does
/// not (no layer for it: the common baseline applies).
#[test]
fn rhel_9_is_selected_for_point_releases_and_rebuilds() {
    let cases = [
        (
            "ID=\"rocky\"\\nID_LIKE=\"rhel centos fedora\"\\nVERSION_ID=\"9.3\"\\n",
            "rhel-9",
        ),
        (
            "ID=\"almalinux\"\\nID_LIKE=\"rhel centos fedora\"\\nVERSION_ID=\"9.4\"\\n",
            "rhel-9",
        ),
        ("ID=\"rhel\"\\nVERSION_ID=\"9.10\"\\n", "rhel-9"),
        ("ID=\"rhel\"\\nVERSION_ID=\"8.10\"\\n", "common"),
        ("ID=\"rhel\"\\nVERSION_ID=\"90\"\\n", "common"),
    ];
    assert_selects(
        "rhel-9-default",
        &cases.map(|(text, want)| (text.to_string(), want)),
    );
}

// ---------------------------------------------------------------------------------------------
// Amazon Linux 2 (VERSION_ID "2": must not collide with Amazon Linux 2023's "2023")

const AMAZON_LINUX_2: Distro = Distro {
    name: "amazon-linux-2",
    baseline: "amazon-linux-2",
    os_id: "amzn",
    extra_families: &["packages"],
    // What a stock AL2 AMI fails: OpenSSH 7.4's defaults (root login, group14-sha1, SHA-1 MACs),
    // authconfig PAM without faillock and with nullok, libpwquality 1.2.3 defaults, `-a never,task`
    // in the audit rules and no watches, SELinux disabled, rpcbind listening, no firewall, 5.10
    // kernel defaults (unprivileged BPF, no protected_fifos/regular from systemd 219), the AMI's
    // update-motd banner. It passes what AL2 already does right: chrony on 169.254.169.123,
    // gpgcheck, UMASK 077 in login.defs, rp_filter from systemd's 50-default.conf.

    // no drop-in directory in AL2's sshd: the drop-in permission rule has nothing to judge
    hardened_not_applicable: &[
        "at-allow-permissions",
        "cron-allow-permissions",
        "firewall-imds-probe",
        "grub-cfg-permissions",
        "grub2-cfg-permissions",
        "mount-home-nodev",
        "mount-var-tmp-options",
        "ssh-host-private-key-permissions",
        "ssh-host-public-key-permissions",
        "sshd-config-dropins-permissions",
    ],
    faults: &[
        ("chmod 0644 /etc/shadow", "etc-shadow-permissions"),
        // no shadow group on AL2: Debian's 0640 is a fault here
        ("chmod 0640 /etc/gshadow", "etc-gshadow-permissions"),
        ("write /etc/yum.repos.d/epel.repo [epel]\\nname=Extra Packages for Enterprise Linux 7\\nbaseurl=https://example.com/epel/7/$basearch\\ngpgcheck=0\\n", "package-repo-gpgcheck-not-disabled"),
        ("write /etc/yum.conf [main]\\ncachedir=/var/cache/yum/$basearch/$releasever\\ngpgcheck=0\\n", "package-gpgcheck-enabled"),
        ("write /etc/selinux/config SELINUX=disabled\\nSELINUXTYPE=targeted\\n", "selinux-enforcing\nselinux-not-disabled"),
        // settings moved to a .d file that libpwquality 1.2.3 never reads
        ("write /etc/security/pwquality.conf # settings moved to pwquality.conf.d\\n\nwrite /etc/security/pwquality.conf.d/60-hardening.conf minlen = 14\\nminclass = 4\\nmaxrepeat = 3\\n", "pwquality-maxrepeat\npwquality-minclass\npwquality-minlen"),
        // authconfig --update regenerates password-auth-ac: faillock gone, nullok back (sshd's stack)
        ("write /etc/pam.d/password-auth-ac auth required pam_env.so\\nauth sufficient pam_unix.so try_first_pass nullok\\nauth required pam_deny.so\\npassword requisite pam_pwquality.so try_first_pass local_users_only retry=3 authtok_type=\\npassword sufficient pam_unix.so try_first_pass use_authtok nullok sha512 shadow\\n", "pam-faillock-password-auth\npam-unix-no-nullok"),
        // the preauth line without unlock_time judges the tally with the module's 600 s
        ("write /etc/pam.d/system-auth-ac auth required pam_env.so\\nauth required pam_faillock.so preauth silent audit deny=5\\nauth sufficient pam_unix.so try_first_pass\\nauth [default=die] pam_faillock.so authfail audit deny=5 unlock_time=900\\nauth required pam_deny.so\\npassword requisite pam_pwquality.so try_first_pass retry=3 enforce_for_root\\npassword sufficient pam_unix.so try_first_pass use_authtok sha512 shadow\\n", "faillock-unlock-time"),
        ("write /etc/pam.d/system-auth-ac auth required pam_faillock.so preauth silent deny=10 unlock_time=900\\nauth sufficient pam_unix.so try_first_pass\\nauth [default=die] pam_faillock.so authfail deny=10 unlock_time=900\\npassword requisite pam_pwquality.so retry=3 enforce_for_root\\npassword sufficient pam_unix.so use_authtok sha512 shadow\\n", "faillock-deny"),
        // a site rules file bringing back AL2's stock line: every watch goes silent
        ("write /etc/audit/rules.d/10-base.rules -a never,task\\n", "audit-syscall-auditing-not-disabled"),
        ("write /etc/sysctl.d/99-zz-bpf.conf kernel.unprivileged_bpf_disabled = 0\\n", "sysctl-unprivileged-bpf-disabled"),
        ("symlink /usr/lib/systemd/system/rpcbind.socket /etc/systemd/system/sockets.target.wants/rpcbind.socket", "service-rpcbind-disabled"),
    ],
};

#[test]
#[ignore = "needs root: fixture file owners"]
fn amazon_linux_2_stock_image_fails_exactly_the_expected_rules() {
    stock_image_fails_exactly(&AMAZON_LINUX_2);
    let root = fixture("amazon-linux-2-default");
    let (_, report, _) = check_json(root.path(), &["--only", "ssh,logging"]);
    // KexAlgorithms is unset: OpenSSH 7.4's own list, which still offers group14-sha1, is judged
    let kex = &result(&report, "ssh-kex-strong")["evidence"][0];
    assert!(
        kex["found"]
            .as_str()
            .is_some_and(|f| f.ends_with(",diffie-hellman-group14-sha1")),
        "{kex}"
    );
    let root_login = &result(&report, "ssh-permit-root-login-no")["evidence"][0];
    assert_eq!(
        root_login["found"], "yes",
        "7.4's compiled-in default: {root_login}"
    );
    // the stock rules file's own line is the evidence
    let audit = &result(&report, "audit-syscall-auditing-not-disabled")["evidence"][0];
    assert_eq!(
        (audit["path"].as_str(), audit["found"].as_str()),
        (
            Some("/etc/audit/rules.d/audit.rules"),
            Some("-a never,task")
        ),
        "{audit}"
    );
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn amazon_linux_2_hardened_image_passes() {
    hardened_image_passes(&AMAZON_LINUX_2);
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn amazon_linux_2_seeded_faults_are_caught() {
    seeded_faults_are_caught(&AMAZON_LINUX_2);
}

/// AL2's sshd reads one file and keeps the first value of each keyword: faults are edits of
/// `/etc/ssh/sshd_config` itself. Removing a hardening line falls back to OpenSSH 7.4's default,
/// which is weak for root login, MACs and key exchange.
#[test]
fn amazon_linux_2_sshd_config_edits_are_caught() {
    for (from, to, want) in [
        (
            "MACs hmac-sha2-512-etm@openssh.com,",
            "MACs hmac-sha1,hmac-sha2-512-etm@openssh.com,",
            "ssh-macs-strong",
        ),
        (
            "PermitRootLogin no\n",
            "PermitRootLogin yes\n",
            "ssh-permit-root-login-no",
        ),
        ("PermitRootLogin no\n", "", "ssh-permit-root-login-no"),
        (
            "MACs hmac-sha2-512-etm@openssh.com,",
            "#MACs hmac-sha2-512-etm@openssh.com,",
            "ssh-macs-strong",
        ),
        ("KexAlgorithms ", "#KexAlgorithms ", "ssh-kex-strong"),
        (
            "Ciphers chacha20",
            "Ciphers aes128-cbc,chacha20",
            "ssh-ciphers-strong",
        ),
    ] {
        let root = fixture("amazon-linux-2-hardened");
        let path = root.path().join("etc/ssh/sshd_config");
        let text = std::fs::read_to_string(&path).expect("sshd_config");
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` once in the fixture"
        );
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write sshd_config");
        let (_, report, _) = check_json(root.path(), &["--only", "ssh"]);
        assert_eq!(
            ids_with(&report, "fail"),
            vec![want.to_string()],
            "`{from}` -> `{to}`"
        );
    }
}

/// "2" is Amazon Linux 2 only: Amazon Linux 2023 keeps its layer, other versions of amzn (the
/// 2018.03 Amazon Linux AMI) get the common baseline.
#[test]
fn amazon_linux_2_is_selected_only_for_version_2() {
    let amzn = |version_id: &str| {
        format!(
            "NAME=\"Amazon Linux\"\\nID=\"amzn\"\\nID_LIKE=\"centos rhel fedora\"\\nVERSION_ID=\"{version_id}\"\\n"
        )
    };
    assert_selects(
        "amazon-linux-2-default",
        &[
            ("2", "amazon-linux-2"),
            ("2023", "amazon-linux-2023"),
            ("2018.03", "common"),
            ("20", "common"),
        ]
        .map(|(version_id, want)| (amzn(version_id), want)),
    );
}

// ---------------------------------------------------------------------------------------------
// Amazon Linux 2023 (VERSION_ID "2023"; Amazon Linux 2 is "2")

const AMAZON_LINUX_2023: Distro = Distro {
    name: "amazon-linux-2023",
    baseline: "amazon-linux-2023",
    os_id: "amzn",
    extra_families: &["packages"],
    // What a stock AL2023 AMI fails: the audit package's `-a task,never` and no watches, authselect's
    // sssd profile without faillock and with nullok, libpwquality defaults, sshd's drop-in-free
    // defaults and the DEFAULT crypto policy's SHA-1 MACs, SELinux permissive, no firewall, systemd's
    // sysctl defaults (rp_filter 2, suid_dumpable 2 from 50-coredump.conf, ptrace_scope 0 from
    // elfutils' 10-default-yama-scope.conf) and the loadable squashfs/udf/usb-storage/sctp/rds
    // modules. It passes what AL2023 already does right: chrony on 169.254.169.123 through
    // /etc/chrony.d, gpgcheck=True, the 6.1 kernel's own dmesg_restrict 1 and unprivileged BPF off,
    // an empty /etc/motd, the journal's defaults; no cron daemon, so no cron rule applies.

    // no cron daemon on AL2023: no /etc/crontab, /etc/cron.* or cron.allow to judge
    hardened_not_applicable: &[
        "at-allow-permissions",
        "cron-allow-permissions",
        "cron-directories-permissions",
        "crontab-permissions",
        "firewall-imds-probe",
        "grub-cfg-permissions",
        "grub2-cfg-permissions",
        "mount-home-nodev",
        "mount-var-tmp-options",
        "ssh-host-private-key-permissions",
        "ssh-host-public-key-permissions",
    ],
    faults: &[
        // a drop-in sorting before 40-hardening.conf wins over it and over 50-redhat.conf
        ("write /etc/ssh/sshd_config.d/10-legacy.conf PermitRootLogin yes\\n\nchmod 0600 /etc/ssh/sshd_config.d/10-legacy.conf", "ssh-permit-root-login-no"),
        ("chmod 0644 /etc/shadow", "etc-shadow-permissions"),
        // no shadow group on AL2023: Debian's 0640 is a fault here, also on the backup
        ("chmod 0640 /etc/gshadow-", "etc-gshadow-backup-permissions"),
        ("write /etc/dnf/dnf.conf [main]\\ngpgcheck=0\\ninstallonly_limit=3\\n", "package-gpgcheck-enabled"),
        ("write /etc/yum.repos.d/docker-ce.repo [docker-ce-stable]\\nbaseurl=https://download.docker.com/linux/fedora/36/$basearch/stable\\ngpgcheck=0\\n", "package-repo-gpgcheck-not-disabled"),
        // a weak MAC in a drop-in read before the hardening one
        ("write /etc/ssh/sshd_config.d/30-legacy-clients.conf MACs hmac-sha2-256,hmac-sha1\\n\nchmod 0600 /etc/ssh/sshd_config.d/30-legacy-clients.conf", "ssh-macs-strong"),
        // authselect's password-auth regenerated without with-faillock: sshd's stack has no lockout,
        // while system-auth (what the common rule reads) still has it
        ("write /etc/authselect/password-auth auth required pam_env.so\\nauth sufficient pam_unix.so\\nauth required pam_deny.so\\naccount required pam_unix.so\\npassword requisite pam_pwquality.so local_users_only\\npassword sufficient pam_unix.so sha512 shadow use_authtok\\n", "pam-faillock-password-auth"),
        // a setuid copy of the shell left in /var/tmp
        ("copy /usr/bin/bash /var/tmp/.bash\nchmod 4755 /var/tmp/.bash", "files-suid-sgid-allowlist"),
        // the setuid programs are judged against their rpm records: a patched sudo, a sudo
        // readable again (rpm records 4111), passwd given to another group
        ("append /usr/bin/sudo # patched", "files-suid-sgid-allowlist"),
        ("chmod 4755 /usr/bin/sudo", "files-suid-sgid-allowlist"),
        ("chown 0:1000 /usr/bin/passwd\nchmod 4755 /usr/bin/passwd", "files-suid-sgid-allowlist"),
        ("write /etc/selinux/config SELINUX=disabled\\nSELINUXTYPE=targeted\\n", "selinux-enforcing\nselinux-not-disabled"),
        // the audit package's stock line brought back by a site rules file
        ("write /etc/audit/rules.d/10-base.rules -a task,never\\n", "audit-syscall-auditing-not-disabled"),
        // the kernel restricts dmesg by default: only an explicit 0 opens it
        ("write /etc/sysctl.d/99-zz-debug.conf kernel.dmesg_restrict = 0\\nkernel.unprivileged_bpf_disabled = 0\\n", "sysctl-dmesg-restrict\nsysctl-unprivileged-bpf-disabled"),
        ("rm /etc/chrony.d/link-local.sources", "chrony-aws-time-source"),
        ("write /etc/crypto-policies/config LEGACY\\n", "crypto-policy-not-legacy"),
    ],
};

#[test]
#[ignore = "needs root: fixture file owners"]
fn amazon_linux_2023_stock_image_fails_exactly_the_expected_rules() {
    stock_image_fails_exactly(&AMAZON_LINUX_2023);
    let root = fixture("amazon-linux-2023-default");
    let (_, report, _) = check_json(root.path(), &["--only", "ssh,kernel,services"]);
    // MACs is unset in sshd_config: the crypto policy's back-end, included by 50-redhat.conf, decides
    let macs = &result(&report, "ssh-macs-strong")["evidence"][0];
    assert_eq!(
        macs["path"], "/etc/crypto-policies/back-ends/opensshserver.config",
        "{macs}"
    );
    // the 6.1 kernel's own defaults hold where no sysctl.d file sets the key
    for id in ["sysctl-dmesg-restrict", "sysctl-unprivileged-bpf-disabled"] {
        assert_eq!(status(&report, id), "pass", "{}", result(&report, id));
    }
    // ptrace_scope: elfutils' file lowers Yama's default of 1
    let ptrace = &result(&report, "sysctl-ptrace-scope")["evidence"][0];
    assert_eq!(
        (ptrace["path"].as_str(), ptrace["found"].as_str()),
        (
            Some("/usr/lib/sysctl.d/10-default-yama-scope.conf"),
            Some("0")
        ),
        "{ptrace}"
    );
    // the Amazon Time Sync Service comes from amazon-chrony-config's drop-in; no cron daemon rule
    let chrony = &result(&report, "chrony-aws-time-source");
    assert_eq!(chrony["status"], "pass", "{chrony}");
    assert!(
        report["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["id"] != "service-cron-enabled"),
        "service-cron-enabled is disabled in the AL2023 layer"
    );
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn amazon_linux_2023_hardened_image_passes() {
    hardened_image_passes(&AMAZON_LINUX_2023);
}

#[test]
#[ignore = "needs root: fixture file owners"]
fn amazon_linux_2023_seeded_faults_are_caught() {
    seeded_faults_are_caught(&AMAZON_LINUX_2023);
}

/// The hardening drop-in's MACs line is what keeps hmac-sha1 out: without it the crypto policy's
/// back-end, included further down by 50-redhat.conf, is the first MACs sshd reads.
#[test]
fn amazon_linux_2023_crypto_policy_macs_apply_without_the_dropin_line() {
    let root = fixture("amazon-linux-2023-hardened");
    let path = root.path().join("etc/ssh/sshd_config.d/40-hardening.conf");
    let text = std::fs::read_to_string(&path).expect("40-hardening.conf");
    let line = text
        .lines()
        .find(|l| l.starts_with("MACs "))
        .expect("MACs line in the fixture")
        .to_string();
    std::fs::write(&path, text.replace(&format!("{line}\n"), "")).expect("write drop-in");
    let (_, report, _) = check_json(root.path(), &["--only", "ssh"]);
    assert_eq!(
        ids_with(&report, "fail"),
        vec!["ssh-macs-strong".to_string()]
    );
    let ev = &result(&report, "ssh-macs-strong")["evidence"][0];
    assert!(
        ev["found"]
            .as_str()
            .is_some_and(|f| f.contains("hmac-sha1")),
        "{ev}"
    );
}

/// "2023" is Amazon Linux 2023 only; "2" is Amazon Linux 2; other amzn versions get common.
#[test]
fn amazon_linux_2023_is_selected_only_for_version_2023() {
    let amzn = |version_id: &str| {
        format!(
            "NAME=\"Amazon Linux\"\\nID=\"amzn\"\\nID_LIKE=\"fedora\"\\nVERSION_ID=\"{version_id}\"\\n"
        )
    };
    assert_selects(
        "amazon-linux-2023-default",
        &[
            ("2023", "amazon-linux-2023"),
            ("2", "amazon-linux-2"),
            ("2018.03", "common"),
            ("2022", "common"),
        ]
        .map(|(version_id, want)| (amzn(version_id), want)),
    );
}
