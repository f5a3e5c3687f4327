"""Synthetic bedside monitors and wearables emitting vital-sign messages (deterministic for a seed)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# vital -> (UCUM unit, baseline mean, standard deviation, decimals)
VITALS: dict[str, tuple[str, float, float, int]] = {
    "heart_rate": ("/min", 78.0, 9.0, 0),
    "spo2": ("%", 97.0, 1.2, 0),
    "respiratory_rate": ("/min", 16.0, 2.5, 0),
    "systolic_bp": ("mm[Hg]", 122.0, 12.0, 0),
    "diastolic_bp": ("mm[Hg]", 76.0, 8.0, 0),
    "temperature": ("Cel", 36.9, 0.35, 1),
}
DEVICE_TYPES = ("bedside_monitor", "wearable")


@dataclass(frozen=True)
class Device:
    """A simulated device attached to one patient, with that patient's own baseline."""

    device_id: str
    device_type: str
    patient_ref: str
    baseline: dict[str, float]


def make_devices(count: int, rng: random.Random) -> list[Device]:
    """``count`` devices, alternating bedside monitors and wearables, one patient each."""
    return [
        Device(
            device_id=f"dev-{i:05d}",
            device_type=DEVICE_TYPES[i % len(DEVICE_TYPES)],
            patient_ref=f"patient-{i:05d}",
            baseline={v: rng.gauss(mean, sd / 2) for v, (_, mean, sd, _) in VITALS.items()},
        )
        for i in range(count)
    ]


def messages(
    count: int, devices: int, seed: int = 7, start: datetime | None = None, interval_s: float = 1.0
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``count`` (device id, message) pairs round-robin over ``devices`` devices.

    Each message carries a unique message id, the device's own sequence number, an event time
    advancing ``interval_s`` per round, and one measurement of every vital.
    """
    rng = random.Random(seed)
    fleet = make_devices(devices, rng)
    t0 = start or datetime.now(UTC).replace(microsecond=0)
    for n in range(count):
        dev = fleet[n % len(fleet)]
        seq = n // len(fleet)
        measurements = [
            {"vital": vital, "value": round(rng.gauss(dev.baseline[vital], sd / 3), decimals), "unit": unit}
            for vital, (unit, _, sd, decimals) in VITALS.items()
        ]
        yield (
            dev.device_id,
            {
                "message_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "device_id": dev.device_id,
                "device_type": dev.device_type,
                "patient_ref": dev.patient_ref,
                "event_time": (t0 + timedelta(seconds=seq * interval_s)).isoformat().replace("+00:00", "Z"),
                "seq": seq,
                "measurements": measurements,
            },
        )
