"""`python -m codesuggest.stack.serve_part <part> serve ...`: the stack's child processes run the
ordinary `codesuggest` CLI under this module name, which marks them as ours in `ps`."""

from codesuggest.cli import app

if __name__ == "__main__":
    app(prog_name="codesuggest")
