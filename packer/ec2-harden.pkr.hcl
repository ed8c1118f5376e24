# Bake an AMI and gate it on ec2-harden: the build fails when the image has a finding at or above
# var.fail_on. Written for Packer 1.6.6 (Debian 12's packer, with the amazon builders built in) and
# valid on current Packer with the external amazon plugin: see packer/README.md for the differences.
#
#   packer validate packer/
#   packer build -var region=eu-west-1 -var kms_key_id=alias/ami packer/
#
# Two sources share the one provisioner chain: amazon-ebs.al2023 (the real bake) and null.local
# (any machine reachable over SSH; tests/integrations.rs runs the chain against a private sshd on
# localhost with var.audit_root pointing at a throwaway root).

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region the AMI is built in."
}

variable "instance_type" {
  type    = string
  default = "t3.micro"
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the build instance; empty: the default VPC."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key (id, ARN or alias/...) for the AMI's EBS snapshots; empty: the account's default EBS key."
}

variable "encrypt_boot" {
  type    = bool
  default = true
}

variable "iam_instance_profile" {
  type        = string
  default     = ""
  description = "Instance profile for the build instance; needed only to publish the FIM digest (ssm:PutParameter)."
}

variable "source_ami_name" {
  type        = string
  default     = "al2023-ami-2023.*-kernel-*-x86_64"
  description = "Name filter of the source AMI (Amazon Linux 2023, newest first)."
}

variable "source_ami_owner" {
  type    = string
  default = "amazon"
}

variable "ssh_username" {
  type    = string
  default = "ec2-user"
}

variable "ami_name_prefix" {
  type    = string
  default = "hardened-al2023"
}

variable "agent_binary" {
  type        = string
  default     = ""
  description = "Local path of the ec2-harden binary to bake in; empty: target/release/ec2-harden of this checkout."
}

variable "baseline_override" {
  type        = string
  default     = ""
  description = "Local path of the site baseline layered on the auto-selected one (installed as /etc/ec2-harden/site.toml); empty: packer/site.toml."
}

variable "fail_on" {
  type    = string
  default = "high"
}

variable "profile" {
  type        = string
  default     = "ec2"
  description = "ec2 (every rule of the baseline), cis-level1-server or cis-level2-server (the CIS Benchmark's levels)."
  validation {
    condition     = contains(["ec2", "cis-level1-server", "cis-level2-server"], var.profile)
    error_message = "The profile must be ec2, cis-level1-server or cis-level2-server."
  }
}

variable "report_file" {
  type        = string
  default     = "ec2-harden-bake.xml"
  description = "Where the JUnit report is downloaded to on the build machine."
}

variable "fim_digest_parameter" {
  type        = string
  default     = ""
  description = "SSM parameter (e.g. /ec2-harden/fim/hardened-al2023) that receives the sealed FIM manifest's digest; empty: not published."
}

variable "audit_root" {
  type        = string
  default     = "/"
  description = "Root the agent is installed into and audits; / on a build instance, a scratch root in tests."
}

variable "remote_dir" {
  type        = string
  default     = "/tmp/ec2-harden"
  description = "Upload directory on the build machine (must be writable by the SSH user)."
}

variable "null_ssh_host" {
  type    = string
  default = "127.0.0.1"
}

variable "null_ssh_port" {
  type    = number
  default = 22
}

variable "null_ssh_username" {
  type    = string
  default = "packer"
}

variable "null_ssh_private_key_file" {
  type        = string
  default     = ""
  description = "Private key for null.local; empty: the SSH agent ($SSH_AUTH_SOCK)."
}

locals {
  agent_binary      = var.agent_binary != "" ? var.agent_binary : "${path.root}/../target/release/ec2-harden"
  baseline_override = var.baseline_override != "" ? var.baseline_override : "${path.root}/site.toml"
  timestamp         = regex_replace(timestamp(), "[- TZ:]", "")
  # every shell step runs as root (the SSH user needs passwordless sudo) with the same variables
  sudo = "chmod +x {{ .Path }}; sudo -n env {{ .Vars }} {{ .Path }}"
  env = [
    "ROOT=${var.audit_root}",
    "DIR=${var.remote_dir}",
    "FAIL_ON=${var.fail_on}",
    "PROFILE=${var.profile}",
    "FIM_PARAMETER=${var.fim_digest_parameter}",
    "AWS_REGION=${var.region}",
  ]
}

source "amazon-ebs" "al2023" {
  region               = var.region
  instance_type        = var.instance_type
  subnet_id            = var.subnet_id
  iam_instance_profile = var.iam_instance_profile
  encrypt_boot         = var.encrypt_boot
  kms_key_id           = var.kms_key_id
  ami_name             = "${var.ami_name_prefix}-${local.timestamp}"
  ssh_username         = var.ssh_username

  source_ami_filter {
    filters = {
      name                = var.source_ami_name
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = [var.source_ami_owner]
    most_recent = true
  }

  tags = {
    Name       = "${var.ami_name_prefix}-${local.timestamp}"
    Hardening  = "ec2-harden"
    SourceAMI  = "{{ .SourceAMI }}"
    BaselineOn = "{{ isotime }}"
  }
}

source "null" "local" {
  communicator         = "ssh"
  ssh_host             = var.null_ssh_host
  ssh_port             = var.null_ssh_port
  ssh_username         = var.null_ssh_username
  ssh_private_key_file = var.null_ssh_private_key_file
  ssh_agent_auth       = var.null_ssh_private_key_file == ""
}

build {
  sources = ["source.amazon-ebs.al2023", "source.null.local"]

  provisioner "shell" {
    inline = ["mkdir -p ${var.remote_dir}"]
  }

  provisioner "file" {
    source      = local.agent_binary
    destination = "${var.remote_dir}/ec2-harden"
  }

  provisioner "file" {
    source      = local.baseline_override
    destination = "${var.remote_dir}/site.toml"
  }

  # Install into the image before sealing, so the agent and its baseline are in the FIM manifest.
  # (Inline scripts run with /bin/sh -e.)
  provisioner "shell" {
    execute_command  = local.sudo
    environment_vars = local.env
    inline = [
      "R=$${ROOT%/}",
      "install -D -m 0755 -o root -g root \"$DIR/ec2-harden\" \"$R/usr/local/bin/ec2-harden\"",
      "install -D -m 0644 -o root -g root \"$DIR/site.toml\" \"$R/etc/ec2-harden/site.toml\"",
      "\"$R/usr/local/bin/ec2-harden\" baseline validate \"$R/etc/ec2-harden/site.toml\"",
    ]
  }

  # Image hygiene, the last change to the image: no SSH host keys (each instance makes its own at
  # first boot), no builder keys or shell history, no cloud-init instance state.
  provisioner "shell" {
    execute_command  = local.sudo
    environment_vars = local.env
    inline = [
      "R=$${ROOT%/}",
      "rm -f \"$R\"/etc/ssh/ssh_host_*_key \"$R\"/etc/ssh/ssh_host_*_key.pub",
      "rm -f \"$R\"/root/.ssh/authorized_keys \"$R\"/home/*/.ssh/authorized_keys \"$R\"/root/.bash_history \"$R\"/home/*/.bash_history",
      "if [ -z \"$R\" ] && command -v cloud-init >/dev/null; then cloud-init clean --logs; fi",
    ]
  }

  # Audit at stage bake; this also seals the FIM manifest into the image. The exit code is kept so
  # that the JUnit report is fetched before the gate below fails the build.
  provisioner "shell" {
    execute_command  = local.sudo
    environment_vars = local.env
    inline = [
      "R=$${ROOT%/}",
      "code=0",
      "\"$R/usr/local/bin/ec2-harden\" check --stage bake --profile \"$PROFILE\" --root \"$ROOT\" --baseline \"$R/etc/ec2-harden/site.toml\" --fail-on \"$FAIL_ON\" --format junit --output \"$DIR/report.xml\" || code=$?",
      "echo \"$code\" > \"$DIR/exit-code\"",
      "chmod 0644 \"$DIR/report.xml\" \"$DIR/exit-code\"",
    ]
  }

  provisioner "file" {
    direction   = "download"
    source      = "${var.remote_dir}/report.xml"
    destination = var.report_file
  }

  # The gate: the agent's exit code (1: findings at or above var.fail_on; 2, 3: it could not run).
  provisioner "shell" {
    execute_command  = local.sudo
    environment_vars = local.env
    inline = [
      "code=$(cat \"$DIR/exit-code\")",
      "if [ \"$code\" != 0 ]; then echo \"ec2-harden: exit $code: the image has findings at or above $FAIL_ON (see above and ${var.report_file})\" >&2; exit \"$code\"; fi",
      "digest=$(sed -n 's/.*sealed .*(found sha256:\\([0-9a-f]\\{64\\}\\)).*/\\1/p' \"$DIR/report.xml\" | head -n 1)",
      "echo \"ec2-harden: the image passed at --fail-on $FAIL_ON; FIM manifest sha256:$digest\"",
      "if [ -n \"$FIM_PARAMETER\" ]; then aws ssm put-parameter --region \"$AWS_REGION\" --name \"$FIM_PARAMETER\" --type String --overwrite --value \"$digest\" >/dev/null && echo \"ec2-harden: digest published to SSM parameter $FIM_PARAMETER\"; fi",
      "rm -rf \"$DIR\"",
    ]
  }
}
