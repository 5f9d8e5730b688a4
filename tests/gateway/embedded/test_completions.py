import pytest

# Expected completions are what a stdlib-trained order-6 model must produce for
# inputs with one clear answer.


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("import os\nos.path.jo", "in("),
        ("from collections import namedt", "uple"),
        ("import collections\ncounts = collections.Ord", "eredDict()"),
        ("except KeyboardInterr", "upt:"),
        ("with open(path) as f:\n    data = f.", "read()"),
        ("if __name__ == ", "'__main__':"),
        ("parser = argparse.", "ArgumentParser("),
        ("for key, value in d.", "items():"),
    ],
)
def test_stdlib_idioms(engine, prefix, expected):
    assert engine.complete(prefix, "") == expected


def test_identifier_defined_in_prefix(engine):
    prefix = "def compute_widget_total(items):\n    return sum(items)\n\n\nx = compute_w"
    assert engine.complete(prefix, "") == "idget_total"
    assert engine.complete("x = compute_w", "") != "idget_total"  # not from the stdlib


def test_identifier_at_line_start_completes_from_its_definition(engine):
    prefix = "def frobnicate_widgets(a):\n    return a\n\n\nfrobn"
    assert engine.complete(prefix, "\n") == "icate_widgets"


def test_identifier_from_context_files(engine):
    ctx = ["def frobnicate_widgets(a, b):\n    return a\n"]
    assert engine.complete("x = frobnicate_", "", context=ctx) == "widgets"
    assert engine.complete("x = frobnicate_", "") != "widgets"


def test_editor_inserted_closer_is_not_duplicated(engine):
    assert engine.complete("value = int(", "") == "value)"
    assert engine.complete("value = int(", ")") == "value"
    assert engine.complete("for i in range(len(items", "))\n") == ""
    assert engine.complete("for i in range(len(items", "") == ")"


def test_abstains_in_comments_and_unterminated_strings(engine):
    assert engine.complete("x = 1  # the answer is ", "") == ""
    assert engine.complete("# import os\n# os.path.jo", "") == ""
    assert engine.complete("name = 'hello wor", "") == ""
    assert engine.complete('def main():\n    """Run the ', "") == ""


def test_abstains_in_front_of_code_and_inside_words(engine):
    assert engine.complete("import os\nos.path.jo", "in(a, b)\n") == ""
    assert engine.complete("x = ", "compute()\n") == ""


def test_whole_line_does_not_repeat_the_next_line(engine):
    prefix = (
        "class Foo:\n    def __init__(self, name):\n        self.name = name\n\n"
        "    def get_name(self):\n        "
    )
    assert engine.complete(prefix, "", mode="whole_line") == "self.name = name"
    assert engine.complete(prefix, "\n        self.name = name\n") == ""


def test_mid_line_stops_at_end_of_line(engine):
    got = engine.complete("with open(path) as f:\n    data = f.", "\n    return data\n")
    assert got == "read()"
    assert "\n" not in engine.complete("import sys\nsys.exit(", "")


def test_no_second_space_after_a_space(engine):
    got = engine.complete("import os\nx = ", "")
    assert not got.startswith(" ")


def test_other_languages_use_the_request_cache_only(engine):
    js = "function renderWidgetPanel(el) {\n  return el;\n}\nrenderWidg"
    assert engine.complete(js, "", language="javascript") == "etPanel"
    # no Python knowledge for other languages
    assert engine.complete("import os\nos.path.jo", "", language="javascript") == ""
    assert engine.complete("let x = 1; // renderWidg", "", language="javascript") == ""


def test_deterministic_and_bounded(engine):
    prefix = "import collections\ncounts = collections.Ord"
    results = {engine.complete(prefix, "") for _ in range(3)}
    assert results == {"eredDict()"}
    assert engine.complete(prefix, "", max_tokens=1) == "eredDict"
    assert engine.complete(prefix, "", max_tokens=0) == ""
