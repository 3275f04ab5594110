// GreetdCore's clients see the pure rules it is built on (GoDuration, QueryProblem, the log-line
// format, the request-id and log-field rules, metric names) without importing GreetdRules
// themselves: those names were GreetdCore's before they moved to the leaf module.
@_exported import GreetdRules
