"""The IDE side: connection details, direct and monolith transports, circuit breaker,
intent detection, telemetry, the language server and the `complete`/`login`/`lsp` commands."""
