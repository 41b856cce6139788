"""README is the front door: its commands and its configuration table must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from inbox.config import SETTINGS
from web.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def fenced_after(marker: str) -> str:
    match = re.search(re.escape(marker) + r"\s*```sh\n(.*?)```", README, re.S)
    assert match, f"README has no sh block after {marker}"
    return match.group(1).strip()


def test_settings_table_matches_settings() -> None:
    block = README.split("<!-- guichet:settings -->")[1].split("<!-- /guichet:settings -->")[0]
    rows = [line for line in block.strip().splitlines()[2:] if line.startswith("|")]
    documented = {}
    for row in rows:
        flag, env, default, meaning = (cell.strip() for cell in row.strip("|").split("|"))
        documented[env.strip("`")] = (flag.strip("`"), default.strip("`"), meaning)
    expected = {}
    for setting in SETTINGS:
        default = "" if setting.default is None else str(setting.default)
        expected[setting.env] = (setting.flag or "", default, setting.help)
    assert documented == expected


def test_first_command_installs_and_serves_demo() -> None:
    command = fenced_after("<!-- guichet:first-command -->")
    assert "pip install ." in command
    assert command.endswith("guichet serve --demo")


def test_ci_runs_the_readme_test_command() -> None:
    command = fenced_after("<!-- guichet:test-command -->")
    ci = (ROOT / ".ci" / "run").read_text()
    assert command.lstrip("./") in ci


def test_every_cli_flag_of_serve_is_documented() -> None:
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    for action in serve._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert option in README, f"{option} missing from README"
