import pytest

from codesuggest.client.intent import COMPLETION, GENERATION, detect_intent


@pytest.mark.parametrize(
    ("above", "below", "expected"),
    [
        ("# write a function that adds two numbers\n", "", GENERATION),
        ("// fetch the user and return their name\n", "\n", GENERATION),
        ("x = 1\n# TODO\n", "", COMPLETION),  # one word does not ask for code
        ("def add(a, b):\n    ", "\n", GENERATION),
        ("def add(a, b):\n    ", "\n    return a + b\n", COMPLETION),
        ("def add(a, b):\n    ret", "\n", COMPLETION),
        ("function f() {\n  ", "\n}\n", GENERATION),
        ("int main(void) {\n  ", "\n}\n", GENERATION),
        ("x = 1\n", "", COMPLETION),
        ("", "", COMPLETION),
        ("# write a parser for csv\nimport os", "\n", COMPLETION),
        ("# write a parser for csv\n", "rows = []\n", COMPLETION),
    ],
)
def test_detect_intent(above, below, expected):
    assert detect_intent(above, below) == expected
