// GreetdRules: pure, dependency-free rules shared by greetd, greet-stress, the tests and the
// fuzzers (Go durations, the log-line format, client-facing field rules, query rules, metric
// names). Filled in by issue 8's leaf-module work.
