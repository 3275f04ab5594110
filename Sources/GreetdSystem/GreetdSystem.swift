// GreetdSystem: the one funnel for operating-system calls (platform conditionals, EINTR retry,
// typed errno). Filled in by issue 8's OS-funnel work.
