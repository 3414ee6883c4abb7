"""The shape of the package: what imports mitmproxy, the route table, profiles and options in the README."""

import ast
import re
from pathlib import Path

import pytest

from normalize.endpoints import FALLBACK, OTHER, ROUTES, route
from normalize.endpoints.chat import CHAT
from normalize.endpoints.models import MODEL, MODELS
from normalize.endpoints.responses.exchange import RESPONSES, STORED_RESPONSES
from normalize.mitm.options import OPTIONS
from normalize.profiles import GENERIC, PROFILES, describe, profile_for
from normalize.repairs import Repair

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_mitm_subpackage_imports_mitmproxy():
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "normalize").rglob("*.py"))
        if "mitm" not in path.relative_to(ROOT / "normalize").parts[:1]
        and any(name == "mitmproxy" or name.startswith("mitmproxy.") for name in imported_modules(path))
    ]
    assert offenders == []


def test_no_module_is_much_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "normalize").rglob("*.py") if (n := len(p.read_text().splitlines())) > 420}
    assert long == {}


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("POST", "/v1/chat/completions", CHAT),
        ("POST", "/v1beta/openai/chat/completions", CHAT),
        ("POST", "/openai/deployments/gpt4/chat/completions", CHAT),
        ("GET", "/v1/models", MODELS),
        ("GET", "/v1/models/meta/llama-3.1-8b-instruct", MODEL),
        ("POST", "/v1/responses", RESPONSES),
        ("GET", "/v1/responses/resp_1", STORED_RESPONSES),
        ("GET", "/v1/responses/resp_1/input_items", STORED_RESPONSES),
        ("DELETE", "/v1/responses/resp_1", STORED_RESPONSES),
        ("GET", "/v1/responses", FALLBACK),
        ("GET", "/v1/chat/completions", FALLBACK),
        ("POST", "/v1/models", FALLBACK),
        ("POST", "/v1/completions", FALLBACK),
        ("GET", "/", FALLBACK),
    ],
)
def test_route_table(method, path, endpoint):
    components = tuple(part for part in path.split("/") if part)
    assert route(method, components).endpoint is endpoint


def test_every_route_is_one_row():
    assert all(r.endpoint is not FALLBACK for r in ROUTES)
    assert OTHER.endpoint is FALLBACK


def test_profiles_are_chosen_by_host():
    assert profile_for("integrate.api.nvidia.com").name == "nim"
    assert profile_for("my-resource.openai.azure.com").name == "azure"
    assert profile_for("API.GROQ.COM").name == "groq"
    assert profile_for("127.0.0.1") is GENERIC


def test_readme_has_provider_notes_for_every_profile():
    notes = README[README.index("## Provider notes") :]
    missing = [p.title for p in PROFILES.values() if f"**{p.title}**" not in notes]
    assert missing == []


def test_readme_says_what_each_profile_does():
    """Each profile's provider note ends with `describe(profile)`, the sentence generated from
    its data, so the README cannot drift from what the profile does."""
    notes = README[README.index("## Provider notes") : README.index("## Options")]
    for profile in PROFILES.values():
        bullet = notes[notes.index(f"- **{profile.title}**") :]
        bullet = bullet[: bullet.find("\n- ", 1) if "\n- " in bullet[1:] else len(bullet)]
        assert " ".join(describe(profile).split()) in " ".join(bullet.split()), profile.name


def test_readme_lists_every_option():
    table = set(re.findall(r"^\| `(normalize_[a-z_]+)` \|", README, re.M))
    assert table == {option.name for option in OPTIONS}


def test_every_repair_has_a_test_of_its_name():
    """Each rule is named after the upstream behaviour it repairs (a `Repair` member) and tested by
    a test of the same name (`test_<member>`, or with the upstream or the case around it, as in
    `test_tgi_error_is_string`)."""
    tests = {node.name for path in (ROOT / "tests").rglob("test_*.py") for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")}
    untested = [r.value for r in Repair if not any(f"_{r.value}_" in f"{t}_" for t in tests)]
    assert untested == []
