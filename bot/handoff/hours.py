"""Business hours: per-weekday opening ranges in one timezone; "when are agents back?"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOSED = {"", "closed", "off", "-"}


def parse_ranges(day: str, spec: str) -> list[tuple[time, time]]:
    """Parse "09:00-18:00" or "09:00-13:00, 14:00-18:00" (or "closed"); raise ValueError naming the day."""
    spec = (spec or "").strip().lower()
    if spec in _CLOSED:
        return []
    ranges = []
    for part in spec.split(","):
        try:
            start_text, end_text = (piece.strip() for piece in part.split("-"))
            start = time.fromisoformat(start_text)
            end = time.fromisoformat("23:59:59.999999" if end_text == "24:00" else end_text)
        except ValueError as exc:
            raise ValueError(
                f'business_hours.{day}: "{part.strip()}" is not a range like "09:00-18:00" ({exc})'
            ) from exc
        if end <= start:
            raise ValueError(f'business_hours.{day}: "{part.strip()}" ends before it starts')
        ranges.append((start, end))
    return sorted(ranges)


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f'handoff.timezone: unknown timezone "{name}" (use an IANA name like Europe/Warsaw)'
        ) from exc


@dataclass(frozen=True)
class BusinessHours:
    """Opening ranges per weekday; no ranges configured at all means always open."""

    zone: ZoneInfo
    week: dict[int, list[tuple[time, time]]]
    always_open: bool

    @classmethod
    def from_settings(cls, spec: dict[str, str], timezone: str) -> BusinessHours:
        unknown = sorted(set(spec) - set(DAYS))
        if unknown:
            raise ValueError(f"business_hours: unknown day(s) {', '.join(unknown)} (use {', '.join(DAYS)})")
        week = {index: parse_ranges(day, spec.get(day, "closed")) for index, day in enumerate(DAYS)}
        return cls(parse_zone(timezone), week, always_open=not spec)

    def is_open(self, now: datetime | None = None) -> bool:
        if self.always_open:
            return True
        local = _utc(now).astimezone(self.zone)
        moment = local.time()
        return any(start <= moment <= end for start, end in self.week[local.weekday()])

    def next_open(self, now: datetime | None = None) -> datetime | None:
        """Return when the next opening range starts (local time), or None if open now or never."""
        if self.always_open or self.is_open(now):
            return None
        local = _utc(now).astimezone(self.zone)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            for start, _ in self.week[day.weekday()]:
                candidate = datetime.combine(day, start, tzinfo=self.zone)
                if candidate > local:
                    return candidate
        return None


def _utc(moment: datetime | None) -> datetime:
    moment = moment or datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
