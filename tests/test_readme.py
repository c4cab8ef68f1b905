"""The README is true for a newcomer: every fenced ``sh``, ``python`` and ``sql`` block
runs as written after ``make demo``, in order, against a freshly built demo warehouse.

Set-up semantics (what the README tells a newcomer): a checkout with ``.venv`` made by
``make``, ``make demo`` building ``./warehouse`` (its server part is left out here), and
every example run in the checkout in a shell where ``source .venv/bin/activate`` ran.
The test builds that demo once, in a scratch copy of the checkout's top level (``.venv``
and the example files linked), and runs each block there with bash (``set -euo
pipefail``: any failing command fails the block), ``python`` blocks with the activated
``python`` and ``sql`` blocks through ``ssl_wc.connect`` (the project connection the
README names for them; each must return rows).

Blocks marked ``shell`` (set-up, your own data or a GPU) are checked without running:
``make`` targets exist (``make -n``) and every ``ssl-wc`` command line parses with the
command line's own parser. ``toml``, ``cron`` and ``ini`` blocks and unlabelled blocks
(folder trees) are configuration or text. A block in any other language fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
RUN = {"sh", "python", "sql"}
CHECK = {"shell"}
TEXT = {"toml", "cron", "ini", ""}
#: What `make demo` is made of, besides the server: the README's set-up.
LINKED = (".venv", "Makefile", "examples", "docs", "notebooks", "README.md", "pyproject.toml")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[A-Za-z0-9_+-]*)[ \t]*$")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence

    @property
    def name(self) -> str:
        return f"{self.lang}@README:{self.line}"


def readme_blocks(text: str) -> list[Block]:
    """Fenced blocks in order (indented fences inside list items included)."""
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group("indent"), m.group("lang"), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        out.append(Block(lang, "\n".join(body) + "\n", start + 1))
        i += 1
    return out


BLOCKS = readme_blocks(README.read_text())


def commands(code: str) -> list[str]:
    """Logical command lines of a shell block: continuations joined, comments dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def test_every_block_has_a_known_language() -> None:
    assert BLOCKS, "the README has fenced blocks"
    unknown = [b.name for b in BLOCKS if b.lang not in RUN | CHECK | TEXT]
    assert not unknown, f"say whether these run after make demo (sh/python/sql) or not " \
                        f"(shell/toml/cron/ini): {unknown}"
    assert sum(b.lang == "sh" for b in BLOCKS) >= 3


def test_readme_parser_finds_indented_and_plain_blocks() -> None:
    text = "intro\n```sh\necho a \\\n  b # note\n```\n* item\n\n  ```toml\n  x = 1\n  ```\n"
    blocks = readme_blocks(text)
    assert [(b.lang, b.code, b.line) for b in blocks] == [("sh", "echo a \\\n  b # note\n", 2),
                                                          ("toml", "x = 1\n", 8)]
    assert commands(blocks[0].code) == ["echo a b"]


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang in CHECK], ids=lambda b: b.name)
def test_shell_blocks_name_real_targets_and_options(block: Block) -> None:
    """Blocks that cannot run here still name make targets that exist and ssl-wc
    commands and options that parse."""
    import typer.main

    from ssl_wc.cli import app

    root_cmd = typer.main.get_command(app)
    for line in commands(block.code):
        for part in re.split(r"\s*&&\s*", line):
            words = shlex.split(part)
            if words[0] == "make":
                dry = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True,
                                     text=True, timeout=60)
                assert dry.returncode == 0, f"{block.name}: {part}: {dry.stderr}"
            elif Path(words[0]).name == "ssl-wc":
                _parse(root_cmd, words[1:], f"{block.name}: {part}")
            elif words[0] == "marimo":
                assert words[1] in ("edit", "run") and (ROOT / words[2]).is_file(), \
                    f"{block.name}: {part}: no notebook {words[2]}"



def _parse(group, args: list[str], where: str) -> None:
    """Parse ``args`` down the command tree without running anything."""
    ctx = group.make_context("ssl-wc", list(args), resilient_parsing=False)
    rest = [*ctx._protected_args, *ctx.args] if hasattr(ctx, "_protected_args") else \
        [*ctx.protected_args, *ctx.args]
    while rest:
        cmd_name, cmd, rest = ctx.command.resolve_command(ctx, rest)
        assert cmd is not None, f"{where}: no command {cmd_name}"
        ctx = cmd.make_context(cmd_name, rest, parent=ctx, resilient_parsing=False)
        if not hasattr(cmd, "resolve_command"):
            break
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])),
                *ctx.args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in cli_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"  # the demo needs no download; never wait for a network
    return env


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch checkout after ``make demo``: ``.venv`` and the example files linked,
    ``./warehouse`` built by the demo command that ``make demo`` runs."""
    root = tmp_path_factory.mktemp("readme") / "ssl-wc"
    root.mkdir()
    for name in LINKED:
        os.symlink(ROOT / name, root / name)
    demo = subprocess.run(["bash", "-c", "source .venv/bin/activate && ssl-wc demo"],
                          cwd=root, env=_env(), capture_output=True, text=True, timeout=1800)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert (root / "warehouse" / "ssl_wc.duckdb").is_file()
    return root


def _shell(script: str, cwd: Path, stdin: str | None = None,
           timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", "set -euo pipefail\nsource .venv/bin/activate\n"
                           + script], cwd=cwd, env=_env(), input=stdin, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang in RUN], ids=lambda b: b.name)
def test_block_runs_after_make_demo(block: Block, checkout: Path) -> None:
    if block.lang == "sh":
        res = _shell(block.code, checkout)
    elif block.lang == "python":
        res = _shell("python -", checkout, stdin=block.code)
    else:
        probe = ("import sys, ssl_wc\n"
                 "rows = ssl_wc.connect('warehouse').sql(sys.stdin.read()).fetchall()\n"
                 "assert rows, 'the query returned no rows on the demo'\n"
                 "print(len(rows), 'rows')\n")
        res = _shell(f"python -c {shlex.quote(probe)}", checkout, stdin=block.code)
    report = f"{block.name} failed (exit {res.returncode}):\n{block.code}\n" \
             f"--- stdout\n{res.stdout[-2000:]}\n--- stderr\n{res.stderr[-3000:]}"
    assert res.returncode == 0, report
    assert "Traceback" not in res.stderr, report


def test_a_broken_command_fails_its_block(checkout: Path) -> None:
    """The harness notices a README command that no longer works (not just any output)."""
    broken = Block("sh", "ssl-wc info\nssl-wc leaderboard --metric no_such_metric\n", 0)
    res = _shell(broken.code, checkout)
    assert res.returncode == 2 and "--metric no_such_metric" in res.stderr
