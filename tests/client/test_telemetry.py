from codesuggest.client.telemetry import MAX_ITEMS, Telemetry


def test_counts_per_model_and_language_then_drained():
    t = Telemetry()
    t.request("e", "m", "python")
    t.request("e", "m", "python")
    t.accept("e", "m", "python")
    t.reject("e", "m", "python")
    t.error("e", "m", "go")
    assert t.drain() == [
        {"model_engine": "e", "model_name": "m", "lang": "python",
         "requests": 2, "accepts": 1, "rejects": 1, "errors": 0},
        {"model_engine": "e", "model_name": "m", "lang": "go",
         "requests": 0, "accepts": 0, "rejects": 0, "errors": 1},
    ]  # fmt: skip
    assert t.drain() == []


def test_at_most_ten_items_per_request_rest_kept_and_restore():
    t = Telemetry()
    for i in range(12):
        t.request("e", "m", f"lang{i}")
    first = t.drain()
    assert len(first) == MAX_ITEMS
    t.restore(first[:1])
    rest = t.drain()
    assert [item["lang"] for item in rest] == ["lang10", "lang11", "lang0"]
