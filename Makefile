# Release artifacts: static binaries for x86_64 and aarch64, .deb and .rpm packages, SHA256SUMS
# in target/dist/ (see scripts/dist.sh). PROFILE=dist is the faster build CI uses.
PROFILE ?= release

.PHONY: dist
dist:
	scripts/dist.sh --profile $(PROFILE)
