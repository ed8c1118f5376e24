//! The distro layers on fixture trees of each distribution's EC2 image as it ships (offline images:
//! the AMI's root volume before first boot) and after the documented hardening: auto-selection from
//! os-release, the exact rules a stock image fails, a clean hardened image, the vendor image's
//! hygiene at bake, and seeded faults each caught by the rule meant for them.

mod common;

use common::{apply, check_json, fixture, ids_with, result};

struct Distro {
    /// Fixture prefix: `<name>-default`, `<name>-hardened`.
    name: &'static str,
    baseline: &'static str,
    os_id: &'static str,
    /// Families beyond [`FAMILIES`] this layer adds (e.g. `packages` on the rpm distros).
    extra_families: &'static [&'static str],
    default_fails: &'static [&'static str],
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
    assert_eq!(
        ids_with(&report, "fail"),
        strings(d.default_fails),
        "{}",
        d.name
    );
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
/// tree, /var/tmp and /home not separate mounts.
const UBUNTU_HARDENED_NA: &[&str] = &[
    "at-allow-permissions",
    "banner-motd-no-os-leak",
    "cron-allow-permissions",
    "etc-motd-permissions",
    "grub-cfg-permissions",
    "grub2-cfg-permissions",
    "mount-home-nodev",
    "mount-var-tmp-options",
    "ssh-host-private-key-permissions",
    "ssh-host-public-key-permissions",
];

/// What a stock Ubuntu 22.04 or 24.04 AMI fails: no auditd, no pwquality, no faillock, ufw off,
/// timesyncd on Ubuntu's pool, sshd and kernel defaults, world-readable sshd/cron files.
const UBUNTU_DEFAULT_FAILS: &[&str] = &[
    "audit-rules-immutable",
    "audit-watch-btmp",
    "audit-watch-faillock",
    "audit-watch-group",
    "audit-watch-gshadow",
    "audit-watch-hostname",
    "audit-watch-hosts",
    "audit-watch-issue",
    "audit-watch-issue-net",
    "audit-watch-lastlog",
    "audit-watch-localtime",
    "audit-watch-opasswd",
    "audit-watch-passwd",
    "audit-watch-shadow",
    "audit-watch-sudo-log",
    "audit-watch-sudoers",
    "audit-watch-sudoers-d",
    "audit-watch-utmp",
    "audit-watch-wtmp",
    "banner-issue-net-no-os-leak",
    "banner-issue-no-os-leak",
    "cron-directories-permissions",
    "crontab-permissions",
    "faillock-unlock-time",
    "kmod-cramfs-disabled",
    "kmod-dccp-disabled",
    "kmod-freevxfs-disabled",
    "kmod-hfs-disabled",
    "kmod-hfsplus-disabled",
    "kmod-jffs2-disabled",
    "kmod-rds-disabled",
    "kmod-sctp-disabled",
    "kmod-tipc-disabled",
    "kmod-udf-disabled",
    "kmod-usb-storage-disabled",
    "login-defs-pass-max-days",
    "login-defs-pass-min-days",
    "login-defs-umask",
    "mount-dev-shm-options",
    "mount-tmp-separate",
    "pam-faillock-enabled",
    "pam-pwquality-enabled",
    "pam-unix-no-nullok",
    "pwquality-difok",
    "pwquality-enforce-for-root",
    "pwquality-maxrepeat",
    "pwquality-maxsequence",
    "pwquality-minclass",
    "pwquality-minlen",
    "service-auditd-enabled",
    "ssh-allow-tcp-forwarding-no",
    "ssh-banner-set",
    "ssh-client-alive-interval",
    "ssh-login-grace-time",
    "ssh-macs-strong",
    "ssh-max-auth-tries",
    "ssh-max-startups",
    "ssh-permit-root-login-no",
    "ssh-x11-forwarding-no",
    "sshd-config-dropins-permissions",
    "sshd-config-permissions",
    "su-restricted",
    "sudo-logfile",
    "sysctl-accept-redirects-default-off",
    "sysctl-accept-redirects-off",
    "sysctl-bpf-jit-harden",
    "sysctl-ipv6-accept-ra-all-off",
    "sysctl-ipv6-accept-ra-default-off",
    "sysctl-ipv6-accept-redirects-all-off",
    "sysctl-ipv6-accept-redirects-default-off",
    "sysctl-kexec-load-disabled",
    "sysctl-log-martians-all",
    "sysctl-log-martians-default",
    "sysctl-rp-filter-all",
    "sysctl-rp-filter-default",
    "sysctl-secure-redirects-all-off",
    "sysctl-secure-redirects-default-off",
    "sysctl-send-redirects-default-off",
    "sysctl-send-redirects-off",
    "sysctl-sysrq",
    "timesyncd-aws-time-source",
    "ufw-enabled",
    "useradd-inactive",
];

const UBUNTU_2204: Distro = Distro {
    name: "ubuntu-22.04",
    baseline: "ubuntu-22.04",
    os_id: "ubuntu",
    extra_families: &[],
    default_fails: UBUNTU_DEFAULT_FAILS,
    hardened_not_applicable: UBUNTU_HARDENED_NA,
    faults: &[
        // a drop-in read before the hardening one wins over it and over the main file
        ("write /etc/ssh/sshd_config.d/50-cloud-init.conf PermitRootLogin yes\\n\nchmod 0600 /etc/ssh/sshd_config.d/50-cloud-init.conf", "ssh-permit-root-login-no"),
        // the cloud image's own drop-in re-enabling passwords, at the position it really has
        ("write /etc/ssh/sshd_config.d/60-cloudimg-settings.conf PasswordAuthentication yes\\n", "ssh-password-authentication-no"),
        ("write /etc/ufw/ufw.conf ENABLED=no\\nLOGLEVEL=low\\n", "ufw-enabled"),
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
fn ubuntu_22_04_hardened_image_passes() {
    hardened_image_passes(&UBUNTU_2204);
}

#[test]
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
    default_fails: UBUNTU_DEFAULT_FAILS,
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
fn ubuntu_24_04_hardened_image_passes() {
    hardened_image_passes(&UBUNTU_2404);
}

#[test]
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
    default_fails: &[
        "audit-rules-immutable",
        "audit-watch-btmp",
        "audit-watch-faillock",
        "audit-watch-group",
        "audit-watch-gshadow",
        "audit-watch-hostname",
        "audit-watch-hosts",
        "audit-watch-issue",
        "audit-watch-issue-net",
        "audit-watch-lastlog",
        "audit-watch-localtime",
        "audit-watch-opasswd",
        "audit-watch-passwd",
        "audit-watch-shadow",
        "audit-watch-sudo-log",
        "audit-watch-sudoers",
        "audit-watch-sudoers-d",
        "audit-watch-utmp",
        "audit-watch-wtmp",
        "auditd-keep-logs",
        "banner-issue-net-no-os-leak",
        "banner-issue-no-os-leak",
        "chrony-aws-time-source",
        "cron-directories-permissions",
        "crontab-permissions",
        "faillock-unlock-time",
        "kmod-cramfs-disabled",
        "kmod-squashfs-disabled",
        "kmod-udf-disabled",
        "kmod-usb-storage-disabled",
        "login-defs-pass-max-days",
        "login-defs-pass-min-days",
        "login-defs-umask",
        "mount-dev-shm-options",
        "mount-tmp-separate",
        "pam-faillock-enabled",
        "pam-unix-no-nullok",
        "pwquality-difok",
        "pwquality-enforce-for-root",
        "pwquality-maxrepeat",
        "pwquality-maxsequence",
        "pwquality-minclass",
        "pwquality-minlen",
        "rsyslog-file-create-mode",
        "service-host-firewall-enabled",
        "shell-umask-not-weak",
        "ssh-allow-tcp-forwarding-no",
        "ssh-banner-set",
        "ssh-client-alive-interval",
        "ssh-gssapi-authentication-no",
        "ssh-login-grace-time",
        "ssh-macs-strong",
        "ssh-max-auth-tries",
        "ssh-max-startups",
        "ssh-password-authentication-no",
        "ssh-permit-root-login-no",
        "ssh-x11-forwarding-no",
        "su-restricted",
        "sudo-logfile",
        "sudo-use-pty",
        "sysctl-accept-redirects-default-off",
        "sysctl-accept-redirects-off",
        "sysctl-bpf-jit-harden",
        "sysctl-dmesg-restrict",
        "sysctl-ipv6-accept-ra-all-off",
        "sysctl-ipv6-accept-ra-default-off",
        "sysctl-ipv6-accept-redirects-all-off",
        "sysctl-ipv6-accept-redirects-default-off",
        "sysctl-kexec-load-disabled",
        "sysctl-kptr-restrict",
        "sysctl-log-martians-all",
        "sysctl-log-martians-default",
        "sysctl-ptrace-scope",
        "sysctl-rp-filter-all",
        "sysctl-rp-filter-default",
        "sysctl-secure-redirects-all-off",
        "sysctl-secure-redirects-default-off",
        "sysctl-send-redirects-default-off",
        "sysctl-send-redirects-off",
        "sysctl-suid-dumpable-off",
        "useradd-inactive",
    ],
    // journald-compress: RHEL's image has no journald.conf drop-ins or main file in this tree
    hardened_not_applicable: &[
        "at-allow-permissions",
        "cron-allow-permissions",
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
        ("rm /etc/systemd/system/multi-user.target.wants/firewalld.service", "service-host-firewall-enabled"),
    ],
};

#[test]
fn rhel_9_stock_image_fails_exactly_the_expected_rules() {
    stock_image_fails_exactly(&RHEL_9);
}

#[test]
fn rhel_9_hardened_image_passes() {
    hardened_image_passes(&RHEL_9);
}

#[test]
fn rhel_9_seeded_faults_are_caught() {
    seeded_faults_are_caught(&RHEL_9);
}

/// Point releases match the major version; the RHEL rebuilds select the same layer; RHEL 8 does
/// not (no layer for it: the common baseline applies).
#[test]
fn rhel_9_is_selected_for_point_releases_and_rebuilds() {
    for (os_release, want) in [
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
    ] {
        let root = fixture("rhel-9-default");
        apply(
            root.path(),
            &format!("rm /usr/lib/os-release\nwrite /usr/lib/os-release {os_release}"),
        );
        let (_, report, _) = check_json(root.path(), &["--only", "ssh"]);
        assert_eq!(report["baseline"]["name"], want, "{os_release}");
    }
}
