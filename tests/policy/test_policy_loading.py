"""Loading a policy directory: validation at load, refusals that name the file, the hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from authchain.errors import ConfigurationError, PolicyLoadError
from authchain.policy import PolicyEngine, PolicySettings

Write = Callable[..., Path]

PERMIT_READ = """\
@id("permit-read")
@reason("reading is fine")
permit (principal, action == Action::"invoke", resource)
when { context.requested_scopes.containsAll(["crm:read"]) };
"""
FORBID_DEEP = """\
@id("forbid-deep")
@reason("too deep")
forbid (principal, action, resource)
when { context.depth > 3 };
"""
PERMIT_DELEGATE = """\
@id("permit-delegate")
@reason("holders may delegate")
permit (principal, action == Action::"delegate", resource)
when { context.held_scopes.containsAll(context.requested_scopes) };
"""


def load_error(directory: Path) -> str:
    with pytest.raises(PolicyLoadError) as info:
        PolicyEngine.from_directory(directory)
    return info.value.message


# Schema violations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "validator_says"),
    [
        (
            '@id("reads-missing") @reason("r")\n'
            "permit (principal, action, resource) when { context.no_such_attribute };",
            "no_such_attribute",
        ),
        (
            '@id("wrong-type") @reason("r")\n'
            'permit (principal, action, resource) when { context.depth == "deep" };',
            "Long and String are not compatible",
        ),
        (
            '@id("unknown-type") @reason("r")\npermit (principal is Robot, action, resource);',
            "unrecognized entity type `Robot`",
        ),
        (
            '@id("unknown-action") @reason("r")\n'
            'permit (principal, action == Action::"fly", resource);',
            'unrecognized action `Action::"fly"`',
        ),
    ],
)
def test_policy_violating_the_schema_is_refused_with_its_file_and_the_validator_message(
    write_policies: Write, text: str, validator_says: str
) -> None:
    directory = write_policies({"good.cedar": PERMIT_READ, "bad.cedar": text})
    message = load_error(directory)
    assert str(directory / "bad.cedar") in message
    assert "good.cedar" not in message
    assert validator_says in message
    # The policy is named by its @id, not by Cedar's positional id.
    policy_id = text.split('"')[1]
    assert f"policy `{policy_id}`" in message
    assert "policy0" not in message


def test_malformed_policy_text_is_refused_at_load_not_at_decision(write_policies: Write) -> None:
    directory = write_policies({"ok.cedar": PERMIT_READ, "broken.cedar": "permit (principal,"})
    message = load_error(directory)
    assert str(directory / "broken.cedar") in message
    assert "does not parse" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('@reason("r") permit (principal, action, resource);', "needs an @id"),
        ('@id @reason("r") permit (principal, action, resource);', "needs an @id"),
        ('@id("has space") @reason("r") permit (principal, action, resource);', "needs an @id"),
        ('@id("no-reason") permit (principal, action, resource);', "needs a non-empty @reason"),
        ('@id("blank") @reason("  ") permit (principal, action, resource);', "non-empty @reason"),
    ],
)
def test_policy_without_a_usable_id_or_reason_is_refused(
    write_policies: Write, text: str, complaint: str
) -> None:
    directory = write_policies({"p.cedar": text})
    message = load_error(directory)
    assert str(directory / "p.cedar") in message
    assert complaint in message


def test_duplicate_policy_id_across_files_is_refused_naming_both(write_policies: Write) -> None:
    directory = write_policies({"a.cedar": PERMIT_READ, "b.cedar": PERMIT_READ})
    message = load_error(directory)
    assert str(directory / "a.cedar") in message and str(directory / "b.cedar") in message
    assert "permit-read" in message


def test_template_is_refused(write_policies: Write) -> None:
    template = '@id("t") @reason("r") permit (principal == ?principal, action, resource);'
    assert "templates" in load_error(write_policies({"t.cedar": template}))


def test_directory_without_policies_is_refused(write_policies: Write) -> None:
    directory = write_policies({"README.md": "not a policy"})
    assert "no .cedar policy files" in load_error(directory)


def test_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a policy directory"):
        PolicyEngine.from_directory(tmp_path / "nowhere")


def test_policy_file_that_is_not_utf8_is_refused(write_policies: Write) -> None:
    directory = write_policies({"ok.cedar": PERMIT_READ})
    (directory / "latin1.cedar").write_bytes(b"// caf\xe9\n")
    assert "not UTF-8" in load_error(directory)


def test_files_other_than_cedar_are_ignored(write_policies: Write) -> None:
    engine = PolicyEngine.from_directory(
        write_policies({"a.cedar": PERMIT_READ, "notes.txt": "permit (", "x.cedar.bak": "junk"})
    )
    assert engine.policy_ids == ("permit-read",)


def test_policies_are_reported_with_effect_reason_and_file(write_policies: Write) -> None:
    directory = write_policies({"a.cedar": PERMIT_READ + FORBID_DEEP})
    engine = PolicyEngine.from_directory(directory)
    assert [(p.id, p.effect, p.reason, p.file) for p in engine.policies] == [
        ("forbid-deep", "forbid", "too deep", str(directory / "a.cedar")),
        ("permit-read", "permit", "reading is fine", str(directory / "a.cedar")),
    ]


# Settings -----------------------------------------------------------------------------------------


def test_settings_file_next_to_the_policies_is_used(write_policies: Write) -> None:
    settings = {"max_depth": 3, "federated_trust_domains": ["partner.example"]}
    directory = write_policies({"a.cedar": PERMIT_READ, "settings.json": json.dumps(settings)})
    engine = PolicyEngine.from_directory(directory)
    assert engine.settings.max_depth == 3
    assert engine.settings.federated_trust_domains == {"partner.example"}
    # Members left out keep their defaults.
    assert engine.settings.allowed_trust_domains == {"example.org"}


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ('{"max_depth": "eight"}', "max_depth"),
        ('{"max_depth": -1}', "max_depth"),
        ('{"max_depth": true}', "max_depth"),
        ('{"sensitive_scopes": "crm:delete"}', "sensitive_scopes"),
        ('{"max_deph": 3}', "unknown member"),
        ('{"max_depth": 3, "max_depth": 4}', "duplicate"),
        ("[1, 2]", "JSON object"),
        ("{", "invalid JSON"),
    ],
)
def test_bad_settings_file_is_refused_with_its_name(
    write_policies: Write, content: str, complaint: str
) -> None:
    directory = write_policies({"a.cedar": PERMIT_READ, "settings.json": content})
    message = load_error(directory)
    assert str(directory / "settings.json") in message
    assert complaint in message


def test_explicit_settings_override_the_settings_file(write_policies: Write) -> None:
    directory = write_policies({"a.cedar": PERMIT_READ, "settings.json": '{"max_depth": 3}'})
    engine = PolicyEngine.from_directory(directory, settings=PolicySettings(max_depth=5))
    assert engine.settings.max_depth == 5


# The policy-set hash ------------------------------------------------------------------------------


def test_hash_is_sha256_of_the_canonical_policy_set(default_engine: PolicyEngine) -> None:
    canonical = default_engine.canonical_policy_set()
    assert default_engine.policy_set_hash == hashlib.sha256(canonical).hexdigest()
    assert json.loads(canonical)["format"] == "authchain.policy-set.v1"


def test_hash_does_not_depend_on_file_names_order_layout_or_comments(write_policies: Write) -> None:
    one = write_policies({"a.cedar": PERMIT_READ, "b.cedar": FORBID_DEEP + PERMIT_DELEGATE})
    two = write_policies(
        {
            "z.cedar": PERMIT_DELEGATE,
            "m.cedar": "// reordered, reformatted and commented\n"
            + FORBID_DEEP.replace("\n", "\n\n  ")
            + "\n"
            + PERMIT_READ.replace("when {", "when   {").replace(", action", ",\n\t action"),
        }
    )
    three = write_policies({"all.cedar": PERMIT_DELEGATE + PERMIT_READ + FORBID_DEEP})
    hashes = {PolicyEngine.from_directory(d).policy_set_hash for d in (one, two, three)}
    assert len(hashes) == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("context.depth > 3", "context.depth > 4"),  # a condition
        ('@reason("too deep")', '@reason("far too deep")'),  # a reason
        ("forbid (principal", "permit (principal"),  # the effect
        ("forbid (principal, action,", 'forbid (principal, action == Action::"invoke",'),  # scope
        ('@id("forbid-deep")', '@id("forbid-deeper")'),  # the id
    ],
)
def test_hash_changes_when_any_policy_changes(write_policies: Write, old: str, new: str) -> None:
    assert old in FORBID_DEEP
    before = write_policies({"a.cedar": PERMIT_READ, "b.cedar": FORBID_DEEP})
    after = write_policies({"a.cedar": PERMIT_READ, "b.cedar": FORBID_DEEP.replace(old, new)})
    assert (
        PolicyEngine.from_directory(before).policy_set_hash
        != PolicyEngine.from_directory(after).policy_set_hash
    )


def test_hash_changes_when_a_policy_is_added_or_removed(write_policies: Write) -> None:
    base = PolicyEngine.from_directory(write_policies({"a.cedar": PERMIT_READ}))
    more = PolicyEngine.from_directory(write_policies({"a.cedar": PERMIT_READ + FORBID_DEEP}))
    assert base.policy_set_hash != more.policy_set_hash


def test_hash_changes_when_the_settings_change(write_policies: Write) -> None:
    directory = write_policies({"a.cedar": PERMIT_READ})
    hashes = {
        PolicyEngine.from_directory(directory, settings=s).policy_set_hash
        for s in (
            PolicySettings(),
            PolicySettings(max_depth=9),
            PolicySettings(sensitive_scopes=frozenset()),
            PolicySettings(federated_trust_domains=frozenset({"partner.example"})),
            PolicySettings(allowed_trust_domains=frozenset({"example.org", "corp.example"})),
        )
    }
    assert len(hashes) == 5


def test_decisions_carry_the_hash_of_the_set_that_made_them(
    default_engine: PolicyEngine, delegate: Callable[..., object]
) -> None:
    decision = default_engine.decide(delegate())  # type: ignore[arg-type]
    assert decision.policy_set_hash == default_engine.policy_set_hash
    assert len(decision.policy_set_hash) == 64
    assert decision.policy_set_hash == decision.policy_set_hash.lower()


def test_shipped_schema_and_pack_load_from_the_installed_package() -> None:
    engine = PolicyEngine.default()
    assert engine.source.endswith("default")
    assert PolicyEngine.default().policy_set_hash == engine.policy_set_hash
