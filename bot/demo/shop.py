"""Sample order data for the demo shop: a context provider that needs no shop behind it.

Enable it to see order data on the agent's context card:

    handoff:
      context_providers:
        orders:
          callable: bot.demo.shop:orders

The orders are made up, but stable per customer (derived from their id), so the card looks the same
every time the same visitor hands off.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

_ITEMS = (
    ("Wool coat, navy, M", 689.00),
    ("Slim jeans, black, 32/32", 199.90),
    ("Leather ankle boots, 39", 459.00),
    ("Merino jumper, oatmeal, S", 249.00),
    ("Linen shirt, white, L", 179.90),
    ("Trench coat, beige, 38", 799.00),
)
_STATUSES = ("delivered", "shipped", "processing")


async def orders(customer: dict[str, Any]) -> dict[str, Any]:
    """Return two or three made-up Northwind orders for `customer` (a context provider)."""
    seed = hashlib.sha256(f"{customer.get('channel')}:{customer.get('external_id')}".encode()).digest()
    today = date.today()
    result = []
    for n in range(2 + seed[0] % 2):
        name, price = _ITEMS[(seed[1] + 2 * n) % len(_ITEMS)]
        placed = today - timedelta(days=2 + seed[n + 4] % 20 + 10 * n)
        result.append(
            {
                "number": f"NW-{100000 + int.from_bytes(seed[n * 3 : n * 3 + 3], 'big') % 900000}",
                "placed": placed.isoformat(),
                "status": _STATUSES[min(n, 2)] if n else _STATUSES[seed[8] % 3],
                "items": [name],
                "total": f"{price:.2f} PLN",
            }
        )
    return {"orders": result, "vip": seed[9] % 5 == 0, "club_member": bool(seed[10] % 2)}


# Orders the demo shop knows by number (what customers type: "12345", "NW-48213"); any other is unknown.
_ORDERS_BY_NUMBER: dict[str, tuple[str, int, str, float]] = {
    # number: (status, days since placed, item, total)
    "12345": ("shipped", 3, "Wool coat, navy, M", 689.00),
    "48213": ("paid", 1, "Denim jacket, blue, L", 259.00),
    "47730": ("new", 0, "Linen shirt, white, L", 179.90),
    "49102": ("packed", 2, "Merino jumper, oatmeal, S", 249.00),
    "50217": ("delivered", 9, "Leather ankle boots, 39", 459.00),
}
ORDER_STATUSES = ("new", "paid", "packed", "shipped", "delivered")  # the shop's statuses, in order


async def order_by_number(number: str) -> dict[str, Any] | None:
    """Return the demo order with this number (digits; "NW-" optional), or None when there is none."""
    digits = "".join(ch for ch in number if ch.isdigit())
    found = _ORDERS_BY_NUMBER.get(digits)
    if found is None:
        return None
    status, days, item, total = found
    return {
        "number": f"NW-{digits}",
        "status": status,
        "placed": (date.today() - timedelta(days=days)).isoformat(),
        "items": [item],
        "total": f"{total:.2f} PLN",
    }
