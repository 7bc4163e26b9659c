"""The README's reference sections are generated from the code; keep them in step."""
from pathlib import Path

from callcue.daemon import contract
from callcue.daemon.commands.check_config import reference_markdown

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_readme_config_reference_matches_the_schema():
    start = README.index("<!-- config-reference")
    start = README.index("\n", start) + 1
    end = README.index("<!-- /config-reference -->")
    assert README[start:end].strip() == reference_markdown().strip(), \
        "README configuration reference is stale: paste the output of `callcue config-reference`"


def test_readme_names_every_alert_kind_and_command_op():
    for kind in contract.ALERT_KINDS:
        assert f"`{kind}`" in README, kind
    for op in contract.CMD_OPS:
        assert f"`{op}`" in README, op


def test_readme_starts_with_the_two_commands():
    lines = [l for l in README.splitlines() if l.strip()]
    assert lines[1] == "```sh"
    assert lines[2].startswith("hardware/provision.sh demo")
    assert lines[3].startswith("hardware/provision.sh test")
