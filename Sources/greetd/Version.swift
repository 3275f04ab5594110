/// greetd's version, as `greetd --version` prints it and the man page states it. The one place it
/// is written: bump it here for a release.
let greetdVersion = "0.9.0"
