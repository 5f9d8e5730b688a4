"""Usage events recorded by the gateway, so nothing is lost when the instance leaves the path.

`events` (schema, `UsageRecorder`, `NullRecorder`), `outbox` (durable outbox + shipper),
`sinks` (jsonl, http, snowplow), `recorder.make_recorder` (from settings), `report`
(`codesuggest usage report`). Client telemetry is folded into events by the completions route.
"""
