"""What a reviewer may see of a run's templates: masked forms only where they cannot carry one
customer's words, keyed references otherwise; counts that do not depend on order."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from pipelines.rules.strings import (
    QualifiedStrings,
    StringRegistry,
    cap_accounts,
    string_hashes,
    template_of,
)
from pipelines.rules.templates import (
    NO_VARIABLE_PART,
    UNCOMMON_WORDS,
    WORD,
    summary_rows,
    template_names,
    template_pairs,
    template_reference,
    word_pairs,
    words_of,
)

FIELD = "diagnostic.log.message"
KEY = b"template-test-key-" + b"t" * 32
COMMON = ("ICE", "restart", "after", "failures", "upload", "failed")
REGISTRY = StringRegistry(
    5, {FIELD: frozenset({"decoder crashed"})}, {FIELD: frozenset({"retry <num> of <num>"})}
)


def _names(value: str, qualified: QualifiedStrings | None = None) -> dict:
    words = QualifiedStrings(np.sort(string_hashes(WORD, FIELD, list(COMMON))))
    table = template_names(
        FIELD,
        pa.array([value]),
        common_words=words,
        qualified=qualified or QualifiedStrings(),
        registry=REGISTRY,
        key=KEY,
    )
    return table.to_pylist()[0]


# value -> (masked form shown, or None; why not)
SHOWN = {
    "common-words-and-a-mask": ("ICE restart after 3 failures", "ICE restart after <num> failures"),
    "a-file-name-masked": ("upload failed: Acme_layoffs_2027.xlsx", "upload failed: <file>"),
    "registry-words": ("retry 2 of 9", "retry <num> of <num>"),
}
HIDDEN = {
    "chat-nothing-masked": ("see you at five", NO_VARIABLE_PART),
    "device-name": ("Alice's iPhone", NO_VARIABLE_PART),
    "cjk-chat": ("我们明天再谈这个合同", NO_VARIABLE_PART),
    "chat-with-a-number": ("see you at 5", UNCOMMON_WORDS),
    "name-in-a-common-message": ("ICE restart after 3 failures, tell Dana", UNCOMMON_WORDS),
    "name-in-a-path-kept-words": ("upload failed for maria: x.pdf", UNCOMMON_WORDS),
}


@pytest.mark.parametrize(("value", "masked"), SHOWN.values(), ids=SHOWN.keys())
def test_a_masked_form_of_common_words_is_shown(value, masked):
    row = _names(value)
    assert (row["masked"], row["hidden_because"]) == (masked, None)


@pytest.mark.parametrize(("value", "why"), HIDDEN.values(), ids=HIDDEN.keys())
def test_a_form_that_may_hold_someones_words_is_hidden_behind_its_reference(value, why):
    row = _names(value)
    assert (row["masked"], row["hidden_because"]) == (None, why)
    assert row["ref"] == template_reference(KEY, FIELD, template_of(value))


def test_a_template_k_accounts_produced_is_shown_even_with_nothing_masked():
    qualified = QualifiedStrings(np.sort(string_hashes("t", FIELD, ["see you at five"])))
    assert _names("see you at five", qualified)["masked"] == "see you at five"


def test_a_value_the_registry_approves_counts_as_an_approved_template():
    row = _names("decoder crashed")
    assert row["approved"] and row["masked"] == "decoder crashed"
    assert not _names("decoder crashed twice")["approved"]


def test_the_reference_is_keyed():
    ref = template_reference(KEY, FIELD, "see you at <num>")
    assert ref.startswith("tpl_") and len(ref) == 20
    assert ref != template_reference(b"another-key-" + b"k" * 32, FIELD, "see you at <num>")
    assert ref != template_reference(KEY, "diagnostic.crash.message", "see you at <num>")


def test_words_are_what_the_masks_leave():
    assert words_of("ICE restart after <num> failures") == ["ICE", "restart", "after", "failures"]
    assert words_of("<path>:<num>") == []


def test_summary_counts_accounts_up_to_k_whatever_the_order():
    values = [f"ICE restart after {n} failures" for n in range(9)] + ["see you at 5"] * 3
    accounts = [f"acct-{n}" for n in range(9)] + ["acct-x"] * 3
    rows = list(zip(values, accounts, strict=True))
    tables = []
    for seed in (1, 2):
        random.Random(seed).shuffle(rows)
        parts = [rows[:5], rows[5:]]
        counted = [
            cap_accounts(
                [template_pairs(FIELD, pa.array([v for v, _ in p]), pa.array([a for _, a in p]))],
                5,
            )
            for p in parts
        ]
        names = [_names_table([v for v, _ in p]) for p in parts]
        tables.append(summary_rows(counted, names, 5))
    assert tables[0].equals(tables[1])
    got = {
        r["masked"] or r["hidden_because"]: (r["accounts"], r["qualified"])
        for r in tables[0].to_pylist()
    }
    assert got == {"ICE restart after <num> failures": (5, True), UNCOMMON_WORDS: (1, False)}


def _names_table(values: list[str]) -> pa.Table:
    words = QualifiedStrings(np.sort(string_hashes(WORD, FIELD, list(COMMON))))
    return template_names(
        FIELD,
        pa.array(values),
        common_words=words,
        qualified=QualifiedStrings(),
        registry=REGISTRY,
        key=KEY,
    )


def test_word_pairs_pair_every_word_of_a_template_with_each_account_that_wrote_it() -> None:
    values = pa.array(
        ["disk full on /dev/sda1", None, "retry 3 of 5", "disk full on /dev/sdb2", "ok", "", "ok"]
    )
    accounts = pa.array(["a-1", "a-2", "a-1", "a-3", "a-2", "a-1", "a-3"])

    got = word_pairs(FIELD, values, accounts)

    expected = set()
    for value, account in zip(values.to_pylist(), accounts.to_pylist(), strict=True):
        if value is None:
            continue
        words = words_of(template_of(value))
        owner = string_hashes("a", "", [account])[0]
        for word in string_hashes(WORD, FIELD, words).tolist() if words else []:
            expected.add((word, int(owner)))
    pairs = list(zip(got["key"].to_pylist(), got["account"].to_pylist(), strict=True))
    assert pairs == sorted(expected)
    assert len(pairs) > 5  # words were there to pair
