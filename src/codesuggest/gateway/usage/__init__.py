"""Usage events recorded by the gateway, so nothing is lost when the instance leaves the path.

`events` (schema, `UsageRecorder`, `NullRecorder`), `outbox` (durable outbox + shipper),
`sinks` (jsonl, http, snowplow), `recorder.make_recorder` (from settings), `telemetry` (client
telemetry -> shown/accepted/rejected), `report` (`codesuggest usage report`).
"""
