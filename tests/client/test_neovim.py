"""docs/client.md's Neovim recipe in Debian's Neovim, headless: open a file, trigger completion
(omni completion, `<C-x><C-o>`), and read what was inserted."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from client.contract_fakes import GOOD_PAT

DOCS = Path(__file__).resolve().parents[2] / "docs" / "client.md"
DRIVE = """
local function finish()
  local out = io.open(vim.env.RESULT_FILE, "w")
  out:write(vim.api.nvim_get_current_line())
  out:close()
  vim.cmd("qa!")
end
local started = vim.wait(20000, function()
  for _, c in pairs(vim.lsp.buf_get_clients(0)) do
    if c.initialized then return true end
  end
  return false
end, 50)
if not started then finish() end
vim.api.nvim_win_set_cursor(0, { 2, 0 })
vim.fn.feedkeys(vim.api.nvim_replace_termcodes("A<C-x><C-o>", true, false, true), "t")
local deadline = vim.loop.now() + 15000
local timer = vim.loop.new_timer()
timer:start(50, 50, vim.schedule_wrap(function()
  if vim.api.nvim_get_current_line() ~= "    return f.r" or vim.loop.now() > deadline then
    timer:stop()
    finish()
  end
end))
"""


def recipe() -> str:
    """The Lua block under docs/client.md's Neovim heading, as a user copies it."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Neovim", 1)[1]
    return re.search(r"```lua\n(.*?)```", section, re.S).group(1)


def test_the_neovim_recipe_completes_mid_word(stack, tmp_path):
    assert shutil.which("nvim"), "nvim is missing: scripts/install-system-packages installs it"
    (tmp_path / "init.lua").write_text(recipe(), encoding="utf-8")
    (tmp_path / "drive.lua").write_text(DRIVE, encoding="utf-8")
    source = tmp_path / "files.py"
    source.write_text("def first(f):\n    return f.r\n", encoding="utf-8")
    result = tmp_path / "line.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODESUGGEST_")}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",  # codesuggest on PATH
        "CODESUGGEST_CONFIG_DIR": str(tmp_path / "config"),
        "CODESUGGEST_INSTANCE_URL": stack.instance.url,
        "CODESUGGEST_TOKEN": GOOD_PAT,
        "RESULT_FILE": str(result),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    run = subprocess.run(
        ["nvim", "--headless", "-n", "-u", str(tmp_path / "init.lua"), str(source),
         "-c", f"luafile {tmp_path / 'drive.lua'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert result.read_text(encoding="utf-8") == "    return f.read()"
