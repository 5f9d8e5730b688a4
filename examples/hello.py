"""A file to ask for completions in: `codesuggest complete examples/hello.py:6:12`."""


def greet(name: str) -> str:
    message = f"Hello, {name}!"
    return 
