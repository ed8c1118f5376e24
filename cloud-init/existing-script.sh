#!/bin/bash
# Stands for the shell script a team already passes as user data; cloud-init runs it (once per
# instance, like runcmd) and the #cloud-config part next to it installs and runs ec2-harden.
set -euo pipefail
echo "site bootstrap: $(hostname) $(date -u +%FT%TZ)"
