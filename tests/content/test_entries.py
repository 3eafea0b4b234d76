"""KB entries edited as text (bot/content/entries.py): only what changed is rewritten, everything else in the
file stays byte for byte, and what is written reads back as the editor set it."""

from __future__ import annotations

import yaml

from bot.content.entries import (
    EntryFields,
    add_entry,
    change_entry,
    entries_in,
    find_entry,
    remove_entry,
    render_entry,
    restore_entry,
    version_of,
)

LANGUAGES = ["en", "pl"]
SOURCE = """\
# Delivery questions. A comment the editor must not lose.

- id: delivery_time   # the most asked
  tags: [delivery]
  questions:
    en: ["How long does delivery take?", "delivery time?"]
    # Polish, as customers write it
    pl:
      - "Jak długo trwa dostawa?"
  answer:
    en: "1-3 days."
    pl: |
      1-3 dni.

  handoff: false

# the next one is about money
- id: delivery_cost
  tags: [delivery, money]
  questions: {en: ["How much is delivery?"], pl: ["Ile kosztuje dostawa?"]}
  answer: {en: "11.99 PLN.", pl: "11,99 zł."}
"""


def fields_of(source: str, entry_id: str) -> EntryFields:
    raw = next(e for e in yaml.safe_load(source) if e["id"] == entry_id)
    questions = {lang: [q] if isinstance(q, str) else q for lang, q in raw["questions"].items()}
    return EntryFields(
        entry_id,
        raw.get("title", ""),
        tuple(raw.get("tags", [])),
        questions,
        {lang: text.strip() for lang, text in raw["answer"].items()},
        raw.get("handoff", False),
    )


def test_entries_are_found_with_their_text_and_version() -> None:
    first, second = entries_in(SOURCE)
    assert (first.id, first.line, second.id, second.line) == ("delivery_time", 3, "delivery_cost", 18)
    assert first.text.startswith("- id: delivery_time   # the most asked\n")
    assert first.text.endswith("  handoff: false\n")  # the blank line and the comment after it are the file's
    assert second.text.endswith('pl: "11,99 zł."}\n')
    assert first.version == version_of(first.text) != second.version


def test_a_changed_answer_is_one_changed_line() -> None:
    entry = find_entry(SOURCE, "delivery_time")
    assert entry is not None
    wanted = fields_of(SOURCE, "delivery_time")
    changed = change_entry(
        SOURCE,
        entry,
        EntryFields(**{**wanted.__dict__, "answer": {**wanted.answer, "en": "2 days."}}),
        LANGUAGES,
    )
    assert changed == SOURCE.replace('en: "1-3 days."', 'en: "2 days."')
    assert change_entry(SOURCE, entry, wanted, LANGUAGES) == SOURCE  # nothing changed: nothing rewritten


def test_keys_and_languages_are_added_and_removed_in_place() -> None:
    entry = find_entry(SOURCE, "delivery_time")
    assert entry is not None
    wanted = fields_of(SOURCE, "delivery_time")
    questions = {"en": wanted.questions["en"], "pl": [*wanted.questions["pl"], "Kiedy paczka?"]}
    answer = {"en": "Line one <img src=x onerror=alert(1)>\nLine two", "pl": wanted.answer["pl"]}
    new = EntryFields("delivery_time", "Delivery time", ("delivery", "true"), questions, answer, True)
    changed = change_entry(SOURCE, entry, new, LANGUAGES)
    after = find_entry(changed, "delivery_time")
    assert after is not None
    # outside the entry: byte for byte
    assert changed[: after.start] == SOURCE[: entry.start] and changed[after.end :] == SOURCE[entry.end :]
    assert after.text == (
        "- id: delivery_time   # the most asked\n"
        '  title: "Delivery time"\n'
        '  tags: [delivery, "true"]\n'
        "  questions:\n"
        '    en: ["How long does delivery take?", "delivery time?"]\n'
        "    # Polish, as customers write it\n"
        "    pl:\n"
        '      - "Jak długo trwa dostawa?"\n'
        '      - "Kiedy paczka?"\n'
        "  answer:\n"
        "    en: |-\n"
        "      Line one <img src=x onerror=alert(1)>\n"
        "      Line two\n"
        "    pl: |\n"
        "      1-3 dni.\n"
        "\n"
        "  handoff: true\n"
    )
    read = fields_of(changed, "delivery_time")
    assert (read.title, read.tags, read.questions, read.answer, read.handoff) == (
        "Delivery time",
        ("delivery", "true"),
        questions,
        answer,
        True,
    )
    fewer = EntryFields("delivery_time", "", ("delivery",), {"en": questions["en"]}, answer, False)
    again = change_entry(changed, after, fewer, LANGUAGES)
    assert "title:" not in again and "Kiedy paczka" not in again and "Jak długo" not in again
    assert fields_of(again, "delivery_time").questions == {"en": questions["en"]}


def test_a_flow_mapping_is_rewritten_whole_and_the_rest_kept() -> None:
    entry = find_entry(SOURCE, "delivery_cost")
    assert entry is not None
    wanted = fields_of(SOURCE, "delivery_cost")
    new = EntryFields(**{**wanted.__dict__, "answer": {"en": "12 PLN.", "pl": "12 zł."}})
    changed = change_entry(SOURCE, entry, new, LANGUAGES)
    assert changed.startswith(SOURCE[: entry.start])
    assert changed.endswith('  answer:\n    en: "12 PLN."\n    pl: "12 zł."\n')
    assert fields_of(changed, "delivery_cost").answer == {"en": "12 PLN.", "pl": "12 zł."}


def test_new_deleted_and_restored_entries() -> None:
    text = render_entry(
        EntryFields(
            "gift_wrap",
            "",
            ("extras",),
            {"pl": ["Pakujecie?"], "en": ["Gift wrap?"]},
            {"en": "Yes.", "pl": "Tak."},
        ),
        LANGUAGES,
    )
    assert (
        text
        == '- id: gift_wrap\n  tags: [extras]\n  questions:\n    en: ["Gift wrap?"]\n    pl: ["Pakujecie?"]\n  answer:\n    en: "Yes."\n    pl: "Tak."\n'
    )
    added, line = add_entry(SOURCE, text)
    assert added == SOURCE + "\n" + text and line == SOURCE.count("\n") + 2
    gone = find_entry(added, "delivery_time")
    assert gone is not None
    removed = remove_entry(added, gone)
    assert removed == SOURCE[: gone.start] + SOURCE[SOURCE.index("# the next one") :] + "\n" + text
    restored, _ = restore_entry(removed, None, gone.text)
    assert find_entry(restored, "delivery_time") is not None
    last = find_entry(added, "gift_wrap")
    assert last is not None and remove_entry(added, last) == SOURCE
    edited = change_entry(SOURCE, entries_in(SOURCE)[0], EntryFields("delivery_time", "T", ("x",)), LANGUAGES)
    back, _ = restore_entry(edited, find_entry(edited, "delivery_time"), entries_in(SOURCE)[0].text)
    assert back == SOURCE
