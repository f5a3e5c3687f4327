"""Synthetic bedside monitors and wearables, in their own dialects, with deteriorating patients and bad data.

Bedside monitors speak the IEEE 11073 gateway dialect (one message per vital); wearables speak the
vendor dialect (several vitals per message, bpm, SpO2 as a fraction, Fahrenheit). A configurable share
of messages is bad in a known way, and the simulator keeps the exact outcome each one must have, so
tests can reconcile the tables against it.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.ingest.registry import Assignment

# vital -> (canonical unit, normal mean, sd, deteriorated mean, decimals)
PHYSIOLOGY: dict[str, tuple[str, float, float, float, int]] = {
    "heart_rate": ("/min", 78.0, 6.0, 128.0, 0),
    "spo2": ("%", 97.0, 0.8, 89.0, 0),
    "respiratory_rate": ("/min", 15.0, 1.5, 27.0, 0),
    "systolic_bp": ("mm[Hg]", 124.0, 8.0, 92.0, 0),
    "diastolic_bp": ("mm[Hg]", 77.0, 5.0, 55.0, 0),
    "temperature": ("Cel", 36.9, 0.2, 39.2, 1),
}
MONITOR_VITALS = ("heart_rate", "spo2", "respiratory_rate", "systolic_bp", "diastolic_bp", "temperature")
WEARABLE_VITALS = ("heart_rate", "spo2", "respiratory_rate", "temperature")
MDC_CODES = {
    "heart_rate": ("MDC_ECG_HEART_RATE", "MDC_DIM_BEAT_PER_MIN"),
    "spo2": ("MDC_PULS_OXIM_SAT_O2", "MDC_DIM_PERCENT"),
    "respiratory_rate": ("MDC_RESP_RATE", "MDC_DIM_RESP_PER_MIN"),
    "systolic_bp": ("MDC_PRESS_BLD_NONINV_SYS", "MDC_DIM_MMHG"),
    "diastolic_bp": ("MDC_PRESS_BLD_NONINV_DIA", "MDC_DIM_MMHG"),
    "temperature": ("MDC_TEMP_BODY", "MDC_DIM_DEGC"),
}
WARDS = ("ICU-1", "ICU-2", "WARD-A", "WARD-B", "HOME")

# Bad kinds and what each must become downstream.
MESSAGE_REJECTS = {  # kind -> quarantine reason of the whole message
    "malformed_json": "malformed_json",
    "missing_field": "missing_field",
    "unknown_dialect": "unknown_dialect",
    "future_event": "future_event_time",
    "invalid_utf8": "invalid_utf8",
}
MEASUREMENT_REJECTS = {"unknown_unit": "unknown_unit", "implausible_value": "implausible_value"}
DUPLICATES = ("duplicate", "duplicate_seq")
ACCEPTED_ODDITIES = ("late_event",)
BAD_KINDS = (*MESSAGE_REJECTS, *MEASUREMENT_REJECTS, *DUPLICATES, *ACCEPTED_ODDITIES)


@dataclass(frozen=True)
class Device:
    """A simulated device attached to one patient in one ward; ``deteriorating`` patients drift abnormal."""

    device_id: str
    device_type: str
    patient_ref: str
    ward: str
    deteriorating: bool


@dataclass
class Expected:
    """The outcome the simulated stream must have in silver, counted exactly."""

    messages: int = 0
    messages_accepted: int = 0
    messages_duplicate: int = 0
    message_rejects: Counter[str] = field(default_factory=Counter)
    measurements_accepted: int = 0
    measurement_rejects: Counter[str] = field(default_factory=Counter)
    bad_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def messages_quarantined(self) -> int:
        return sum(self.message_rejects.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "messages_accepted": self.messages_accepted,
            "messages_quarantined": self.messages_quarantined,
            "messages_duplicate": self.messages_duplicate,
            "message_rejects": dict(self.message_rejects),
            "measurements_accepted": self.measurements_accepted,
            "measurement_rejects": dict(self.measurement_rejects),
            "bad_kinds": dict(self.bad_kinds),
        }


def make_fleet(devices: int, seed: int, deteriorating_share: float = 0.2, prefix: str = "sim") -> list[Device]:
    """``devices`` devices alternating monitors and wearables, one patient each, some deteriorating."""
    rng = random.Random(seed)
    return [
        Device(
            device_id=f"{prefix}-{'mon' if i % 2 == 0 else 'band'}-{i:05d}",
            device_type="bedside_monitor" if i % 2 == 0 else "wearable",
            patient_ref=f"{prefix}-patient-{i:05d}",
            ward=WARDS[i % len(WARDS)] if i % 2 == 0 else "HOME",
            deteriorating=rng.random() < deteriorating_share,
        )
        for i in range(devices)
    ]


def _reading(dev: Device, vital: str, progress: float, rng: random.Random) -> float:
    _unit, mean, sd, worse, decimals = PHYSIOLOGY[vital]
    centre = mean + (worse - mean) * progress if dev.deteriorating else mean
    return round(rng.gauss(centre, sd), decimals)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Simulator:
    """Generates device messages (raw bytes, as devices send them) and the outcome each must have."""

    def __init__(
        self, devices: int, seed: int = 7, bad_fraction: float = 0.0, start: datetime | None = None, prefix: str = "sim"
    ) -> None:
        if not 0.0 <= bad_fraction <= 1.0:
            raise ValueError("bad_fraction must be within 0..1")
        self.fleet = make_fleet(devices, seed, prefix=prefix)
        self.rng = random.Random(seed + 1)
        self.bad_fraction = bad_fraction
        self.start = start or datetime.now(UTC)
        self.seq: Counter[str] = Counter()
        self.expected = Expected()
        self._good: list[bytes] = []  # recent clean messages, for duplicates
        self._good_seq: list[dict[str, Any]] = []

    def _next_seq(self, dev: Device) -> int:
        self.seq[dev.device_id] += 1
        return self.seq[dev.device_id]

    def _monitor(self, dev: Device, vital: str, t: datetime, progress: float) -> dict[str, Any]:
        code, unit = MDC_CODES[vital]
        return {
            "msgId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "deviceSerial": dev.device_id,
            "patientId": dev.patient_ref,
            "timestamp": _iso(t),
            "seqNo": self._next_seq(dev),
            "mdc": {"code": code, "value": _reading(dev, vital, progress, self.rng), "unit": unit},
        }

    def _wearable(self, dev: Device, t: datetime, progress: float) -> dict[str, Any]:
        temp_c = _reading(dev, "temperature", progress, self.rng)
        return {
            "uid": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "band": dev.device_id,
            "wearer": dev.patient_ref,
            "ts": int(t.timestamp() * 1000),
            "n": self._next_seq(dev),
            "fw": "2.4.1",
            "pulse": _reading(dev, "heart_rate", progress, self.rng),
            "spo2": round(_reading(dev, "spo2", progress, self.rng) / 100.0, 3),
            "resp": _reading(dev, "respiratory_rate", progress, self.rng),
            "temp_f": round(temp_c * 9 / 5 + 32, 1),
        }

    def _clean(self, dev: Device, t: datetime, progress: float) -> tuple[dict[str, Any], int]:
        if dev.device_type == "bedside_monitor":
            vital = MONITOR_VITALS[self.seq[dev.device_id] % len(MONITOR_VITALS)]
            return self._monitor(dev, vital, t, progress), 1
        return self._wearable(dev, t, progress), len(WEARABLE_VITALS)

    def _spoil(self, kind: str, msg: dict[str, Any], dev: Device) -> bytes | None:
        """Turn a clean message into bad kind ``kind`` (None: the kind needs no new message)."""
        e = self.expected
        measurements = 1 if dev.device_type == "bedside_monitor" else len(WEARABLE_VITALS)
        if kind in MESSAGE_REJECTS:
            e.message_rejects[MESSAGE_REJECTS[kind]] += 1
            if kind == "malformed_json":
                return json.dumps(msg).encode()[: self.rng.randint(5, 40)]
            if kind == "invalid_utf8":
                return b"\xff\xfe" + json.dumps(msg).encode()
            if kind == "missing_field":
                msg.pop("deviceSerial" if "deviceSerial" in msg else "band")
            elif kind == "unknown_dialect":
                msg = {"payload": msg, "format": "legacy-hl7v2"}
            elif kind == "future_event":
                ahead = timedelta(hours=2)
                if "timestamp" in msg:
                    msg["timestamp"] = _iso(datetime.fromisoformat(msg["timestamp"]) + ahead)
                else:
                    msg["ts"] += int(ahead.total_seconds() * 1000)
            return json.dumps(msg).encode()
        e.messages_accepted += 1
        if kind in MEASUREMENT_REJECTS:
            e.measurement_rejects[MEASUREMENT_REJECTS[kind]] += 1
            e.measurements_accepted += measurements - 1
            if kind == "unknown_unit":  # only monitors send units (a wearable's are fixed by its template)
                msg["mdc"]["unit"] = "MDC_DIM_FURLONG_PER_FORTNIGHT"
            elif "mdc" in msg:
                msg["mdc"]["value"] = 999
            else:
                msg["pulse"] = 520
            return json.dumps(msg).encode()
        # late_event: valid, just old (kept in silver; may miss gold's minute watermark)
        e.measurements_accepted += measurements
        back = timedelta(minutes=20)
        if "timestamp" in msg:
            msg["timestamp"] = _iso(datetime.fromisoformat(msg["timestamp"]) - back)
        else:
            msg["ts"] -= int(back.total_seconds() * 1000)
        return json.dumps(msg).encode()

    def messages(self, count: int, rate: float) -> Iterator[tuple[str, bytes]]:
        """Yield ``count`` (key, raw value) pairs; event times advance 1/``rate`` s per message."""
        interval = 1.0 / rate if rate > 0 else 0.01
        e = self.expected
        for n in range(count):
            dev = self.fleet[n % len(self.fleet)]
            t = self.start + timedelta(seconds=n * interval)
            progress = n / max(count - 1, 1)
            e.messages += 1
            kind = None
            if self.bad_fraction and self.rng.random() < self.bad_fraction:
                kind = self.rng.choice(BAD_KINDS)
                if kind in DUPLICATES and not self._good:
                    kind = "late_event"
                if kind == "unknown_unit" and dev.device_type != "bedside_monitor":
                    kind = "implausible_value"
            if kind in DUPLICATES:
                e.bad_kinds[kind] += 1
                e.messages_duplicate += 1
                pick = self.rng.randrange(len(self._good))
                if kind == "duplicate":
                    yield self._key(self._good_seq[pick]), self._good[pick]
                else:  # same device and seq, new message id (a gateway re-wrapping a resend)
                    clone = dict(self._good_seq[pick])
                    for id_field in ("msgId", "uid"):
                        if id_field in clone:
                            clone[id_field] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
                    yield self._key(clone), json.dumps(clone).encode()
                continue
            msg, measurements = self._clean(dev, t, progress)
            if kind is None:
                e.messages_accepted += 1
                e.measurements_accepted += measurements
                raw = json.dumps(msg).encode()
                self._good.append(raw)
                self._good_seq.append(msg)
                if len(self._good) > 1000:
                    self._good.pop(0)
                    self._good_seq.pop(0)
                yield dev.device_id, raw
                continue
            e.bad_kinds[kind] += 1
            raw_bad = self._spoil(kind, msg, dev)
            if raw_bad is not None:
                yield dev.device_id, raw_bad

    @staticmethod
    def _key(msg: dict[str, Any]) -> str:
        return str(msg.get("deviceSerial") or msg.get("band"))


def fleet_assignments(fleet: list[Device], effective_from: datetime, region: str) -> list[Assignment]:
    """Registry rows for a simulated fleet: each device serves its patient in its ward from ``effective_from``."""
    return [Assignment(d.device_id, d.device_type, d.patient_ref, d.ward, region, effective_from) for d in fleet]


def simulate(
    cfg: Config,
    devices: int,
    rate: float,
    seconds: float,
    region: str | None = None,
    bad_fraction: float = 0.0,
    seed: int = 7,
    realtime: bool = True,
    prefix: str = "sim",
    progress: Callable[[str], None] = print,
) -> tuple[Simulator, int]:
    """Send ``rate`` x ``seconds`` messages from ``devices`` devices to the region's telemetry topic.

    ``realtime`` paces sending so event time follows the clock; otherwise messages go out as fast as
    Kafka takes them, with event times laid out over the ``seconds`` just past. Returns the simulator
    (its ``expected`` outcome) and the number of messages sent.
    """
    from lakehouse.io import kafka

    if devices < 1 or rate <= 0 or seconds <= 0:
        raise LakehouseError("--devices, --rate and --seconds must be positive")
    reg = cfg.region(region)
    count = max(1, int(rate * seconds))
    now = datetime.now(UTC)
    sim = Simulator(
        devices, seed, bad_fraction, start=now if realtime else now - timedelta(seconds=seconds), prefix=prefix
    )
    kafka.ensure_topic(reg, cfg.topics.telemetry, cfg.topics, kafka.DEVICE)
    progress(
        f"simulating {devices} devices, {count} messages at {rate:g}/s over {seconds:g}s"
        f" ({'real time' if realtime else 'as fast as possible'}), bad fraction {bad_fraction:g}, to {reg.name}"
    )
    t0 = time.monotonic()

    def paced() -> Iterator[tuple[str, bytes]]:
        for i, item in enumerate(sim.messages(count, rate)):
            if realtime and (wait := t0 + i / rate - time.monotonic()) > 0:
                time.sleep(wait)
            yield item

    sent = kafka.produce(reg, cfg.topics.telemetry, paced(), progress_every=max(1000, count // 10), progress=progress)
    progress(
        f"simulation done: {sent} messages in {time.monotonic() - t0:.1f}s; expected outcome {sim.expected.as_dict()}"
    )
    return sim, sent
