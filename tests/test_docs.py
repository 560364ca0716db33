"""The user guide cannot drift: every command in it is run, every setting, command, option and
API member it must cover is checked against the code.

Marked fenced blocks in the guide pages (``GUIDE`` below, run in that order in one working
directory, with MACECL_CACHE_DIR pointing into it):

- ```` ```console ````: each line that starts with ``$ `` is a command (a trailing ``\\`` joins
  the next line), run by bash; the lines up to the next command are lines its output (stdout
  and stderr together) must contain, in that order, each matched whole, ``...`` matching
  anything (a line of only ``...`` stands for lines left out). Every command must exit 0,
  or with N in a block marked ```` ```console exit=N ```` (the troubleshooting pages).
- ```` ```python ````: run with Python; it must exit 0 (its asserts are the checks).
- ```` ```python file=NAME ````, ```` ```yaml file=NAME ````, ```` ```text file=NAME ````: written to
  NAME, for a later command to use.

Blocks with any other language (``text``, ``yaml`` and so on without ``file=``) are shown only.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from markdown_it import MarkdownIt

import macecl
from macecl import config
from macecl.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDE_DIR = DOCS / "guide"
# In the order a reader meets them: later pages use files earlier ones made (tiny.onnx...).
GUIDE = ["quickstart.md", "concepts.md", "deployment.md", "cli.md", "troubleshooting.md",
         "api.md"]
COMMAND_TIMEOUT = 300  # seconds; a hung command fails the test instead of hanging CI


@dataclasses.dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    attributes: dict[str, str]
    text: str

    @property
    def where(self) -> str:
        return f"docs/guide/{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    """The fenced blocks of a guide page, with their info strings split into language and
    ``key=value`` attributes."""
    found = []
    for token in MarkdownIt().parse((GUIDE_DIR / page).read_text(encoding="utf-8")):
        if token.type != "fence":
            continue
        language, *words = token.info.split() or [""]
        attributes = dict(word.partition("=")[::2] for word in words)
        found.append(Block(page, token.map[0] + 1, language, attributes, token.content))
    return found


@dataclasses.dataclass
class Command:
    text: str
    expected: list[str]


def commands(block: Block) -> list[Command]:
    """The ``$ `` commands of a console block, each with the output lines shown after it."""
    found: list[Command] = []
    continued = False
    for line in block.text.splitlines():
        if continued:
            found[-1].text = found[-1].text[:-1].rstrip() + " " + line.strip()
        elif line.startswith("$ "):
            found.append(Command(line[2:].strip(), []))
        elif found and line.strip() and line.strip() != "...":
            found[-1].expected.append(line.strip())
        elif not found and line.strip():
            raise AssertionError(f"{block.where}: output before the first `$ ` command")
        continued = bool(found) and found[-1].text.endswith("\\")
    return found


def pattern(line: str) -> re.Pattern:
    """A shown output line as a regular expression: literal, ``...`` matching anything."""
    return re.compile(r"\s*" + ".*".join(map(re.escape, line.split("..."))) + r"\s*")


def unmatched(expected: list[str], output: str) -> str | None:
    """The first shown line the output lacks (in order), or None when all are there."""
    lines = output.splitlines()
    position = 0
    for shown in expected:
        regex = pattern(shown)
        while position < len(lines) and not regex.fullmatch(lines[position]):
            position += 1
        if position == len(lines):
            return shown
        position += 1
    return None


class Reader:
    """A reader following the guide: one working directory, pages in order."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.done: set[str] = set()
        bin_dir = str(Path(sys.executable).parent)  # `python` and `macecl` of this venv
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MACECL_")}
        self.env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                os.environ.get("PYTHONPATH")])),
                        MACECL_CACHE_DIR=str(directory / "cache"), COLUMNS="100")

    def read(self, page: str) -> None:
        for earlier in GUIDE[: GUIDE.index(page)]:
            if earlier not in self.done:
                self.read(earlier)
        for block in blocks(page):
            self.run(block)
        self.done.add(page)

    def run(self, block: Block) -> None:
        if "file" in block.attributes:
            (self.directory / block.attributes["file"]).write_text(block.text, encoding="utf-8")
        elif block.language == "python":
            self.check(block, f"python - <<'__DOCS__'\n{block.text}__DOCS__", [], 0)
        elif block.language == "console":
            status = int(block.attributes.get("exit", 0))
            found = commands(block)
            assert found, f"{block.where}: a console block without a `$ ` command"
            for command in found:
                self.check(block, command.text, command.expected, status)

    def check(self, block: Block, command: str, expected: list[str], status: int) -> None:
        done = subprocess.run(["bash", "-c", command], cwd=self.directory, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=COMMAND_TIMEOUT, check=False)
        context = f"{block.where}: `{command}`\n--- output ---\n{done.stdout}"
        assert done.returncode == status, (
            f"exit status {done.returncode}, the guide expects {status}: {context}")
        missing = unmatched(expected, done.stdout)
        assert missing is None, f"the output lacks the line {missing!r} the guide shows: {context}"


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> Reader:
    return Reader(tmp_path_factory.mktemp("guide"))


@pytest.mark.parametrize("page", GUIDE)
def test_every_command_of_the_page_runs_as_shown(reader, page):
    reader.read(page)


def test_every_guide_page_is_run():
    assert sorted(p.name for p in GUIDE_DIR.glob("*.md")) == sorted(GUIDE)


def test_console_blocks_parse_as_the_guide_means():
    block = Block("x.md", 1, "console", {}, "$ a \\\n  --b\nout ... put\n...\n$ c\n")
    parsed = commands(block)
    assert [(c.text, c.expected) for c in parsed] == [("a --b", ["out ... put"]), ("c", [])]
    assert unmatched(["out ... put", "end"], "x\nout 3 s put\nend\n") is None
    assert unmatched(["end", "out ... put"], "out 3 s put\nend\n") == "out ... put"
    assert unmatched(["(1.5)"], "(1x5)") == "(1.5)"  # shown text is literal, not a pattern


def guide_text() -> str:
    return "\n".join((GUIDE_DIR / page).read_text(encoding="utf-8") for page in GUIDE)


def test_every_setting_is_in_the_guide():
    names = set(re.findall(r"MACECL_[A-Z0-9_]+", (ROOT / "macecl/config.py").read_text()))
    assert names, "config.py names no MACECL_* variable"
    missing = sorted(n for n in names if f"`{n}`" not in guide_text())
    assert not missing, f"settings the guide does not describe: {missing}"
    fields = {f.name for f in dataclasses.fields(config.Settings)}
    assert not sorted(f for f in fields if f"`{f}`" not in guide_text()), \
        "every Settings field is named (for config.override) in the guide"


def cli_commands() -> dict[str, list[str]]:
    """``macecl`` subcommand path -> its option names (the long ones)."""
    found = {}

    def walk(command, path: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, f"{path} {name}".strip())
            return
        found[path] = [max(p.opts, key=len) for p in command.params
                       if p.param_type_name == "option" and p.name != "help"]

    walk(typer.main.get_command(app), "")
    return found


def test_every_command_and_option_is_in_the_cli_reference():
    reference = (GUIDE_DIR / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `macecl ([a-z ]+)`\n(.*?)(?=^## |\Z)", reference,
                               re.MULTILINE | re.DOTALL))
    commands_found = cli_commands()
    assert sorted(sections) == sorted(commands_found), "one `## `macecl CMD`` section a command"
    for name, options in commands_found.items():
        missing = [o for o in options if f"`{o}" not in sections[name]]
        assert not missing, f"cli.md, macecl {name}: options not described: {missing}"


# The API reference: every public member of these, with its signature as the code has it.
API = {
    "GPUContextBuilder": macecl.GPUContextBuilder,
    "GPUContext": macecl.GPUContext,
    "Engine": macecl.Engine,
    "InferenceSession": macecl.InferenceSession,
}
API_FUNCTIONS = {
    "macecl.list_devices": macecl.list_devices,
    "macecl.select_device": macecl.select_device,
    "macecl.get_available_providers": macecl.get_available_providers,
    "macecl.get_device": macecl.get_device,
    "config.settings": config.settings,
    "config.override": config.override,
}


def signature(function) -> str:
    """``(a, b=1)``: the signature without annotations, as the reference writes it."""
    sig = inspect.signature(function)
    parameters = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()
                  if p.name != "self"]
    return str(sig.replace(parameters=parameters, return_annotation=inspect.Signature.empty))


def api_headings() -> list[str]:
    """What the reference must hold, one heading each (``### `Engine.run(feeds, ...)` ``)."""
    wanted = []
    for name, cls in API.items():
        wanted.append(f"{name}{signature(cls.__init__)}")
        for member, value in vars(cls).items():
            if member.startswith("_"):
                continue
            if isinstance(value, property):
                wanted.append(f"{name}.{member}")
            elif callable(value):
                wanted.append(f"{name}.{member}{signature(value)}")
    wanted += [f"{name}{signature(function)}" for name, function in API_FUNCTIONS.items()]
    return wanted


def test_api_reference_has_every_member_with_its_signature():
    reference = (GUIDE_DIR / "api.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{3,4} `(.+)`$", reference, re.MULTILINE))
    missing = [h for h in api_headings() if h not in headings]
    assert not missing, f"api.md lacks (or has a stale signature for): {missing}"
    names = {h.split("(")[0] for h in api_headings()}
    stale = sorted(h for h in headings if h.split("(")[0].split(".")[0] in API
                   and h.split("(")[0] not in names)
    assert not stale, f"api.md documents members the code no longer has: {stale}"


def test_every_exported_name_is_in_the_api_reference():
    reference = (GUIDE_DIR / "api.md").read_text(encoding="utf-8")
    missing = [name for name in macecl.__all__ if not re.search(rf"`[^`]*\b{name}\b", reference)]
    assert not missing, f"macecl exports names api.md does not mention: {missing}"


def test_every_relative_link_resolves():
    pages = [DOCS / "README.md", ROOT / "README.md", *sorted(GUIDE_DIR.glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text("utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, f"links to nothing: {broken}"
