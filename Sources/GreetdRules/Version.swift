/// greetd's version: what `greetd --version` prints, what the man page states and what
/// `greetd_build_info` reports. The one place it is written: bump it here for a release
/// (`scripts/man.sh` and `scripts/check-install.sh` read this line).
public let greetdVersion = "0.9.0"
