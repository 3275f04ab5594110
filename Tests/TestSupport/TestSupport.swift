// TestSupport: the one set of loopback helpers and the one response parser every test target
// shares.
