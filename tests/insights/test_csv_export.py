"""CSV files for spreadsheets: the byte-order mark, text intact, and no cell a spreadsheet would run."""

from __future__ import annotations

import csv
import io

from bot.insights.csv_export import csv_bytes


def test_would_be_formulas_are_text_and_utf8_opens_in_excel() -> None:
    texts = [
        "=1+1",
        "+48 600 100 200",
        "-2+3",
        "@SUM(A1:A2)",
        "\tcmd",
        "\rcmd",
        "Где мой заказ?",
        "Zażółć gęślą jaźń",
        "a = b",
        "",
    ]
    content = csv_bytes(("text", "count"), [{"text": text, "count": -1} for text in texts] + [{"text": None}])

    assert content.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with the mark
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert [row["text"] for row in rows] == [
        "'=1+1",
        "'+48 600 100 200",
        "'-2+3",
        "'@SUM(A1:A2)",
        "'\tcmd",
        "'\rcmd",
        "Где мой заказ?",
        "Zażółć gęślą jaźń",
        "a = b",
        "",
        "",
    ]
    assert [row["count"] for row in rows] == ["-1"] * len(texts) + [""]  # numbers are not text
