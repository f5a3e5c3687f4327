"""Per-patient early warning: measurements in arrival order -> final NEWS2 observations and alert events.

Plain Python, no Spark: the real-time query (``lakehouse.ingest.news2_job``) keeps one
:class:`PatientState` per patient in Spark's state store and calls :meth:`PatientState.step` with each
micro-batch's measurements of that patient.

Rules (docs/pipeline.md, "Real-time NEWS2"):

- An *observation* is a patient's measurements at one event time, completed with the latest value of
  every other vital measured at most ``carry_forward_s`` earlier. It is scored with the NEWS2 chart
  (:func:`lakehouse.clinical.news2.score_observation`).
- An observation becomes *final* (one ``gold.news2`` row) at the end of its micro-batch, or, with a
  hold time, when a newer measurement of the patient arrives or ``hold_ms`` after its last measurement
  arrived. Final observation times strictly increase per patient, so (patient_ref, observation_time)
  is unique and ``gold.news2`` is append-only.
- A measurement at or before the patient's latest observation time (late, a resend, or the rest of a
  monitor's round that reached the next micro-batch) makes no observation of its own; it still becomes
  its vital's latest value if it is newer than the one known, so the next observation carries it.
- Alerts follow the *latest* observation at once, before it is final: NEWS2 >= 7 high (emergency),
  >= 5 medium, any single parameter scoring 3 single_parameter. A patient has at most one open alert;
  when the level changes, the open alert closes and one of the new level opens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from lakehouse.clinical.news2 import score_observation

# the vitals an observation carries (canonical names of conf/vitals.yaml)
OBSERVED_VITALS = (
    "respiratory_rate",
    "spo2",
    "fio2",
    "systolic_bp",
    "diastolic_bp",
    "mean_arterial_pressure",
    "heart_rate",
    "temperature",
)
ALERT_LEVELS = ("single_parameter", "medium", "high")


@dataclass(frozen=True)
class Measurement:
    """One accepted measurement of the patient: event time in microseconds since the epoch (UTC)."""

    event_us: int
    vital: str
    value: float
    ward: str | None = None


def to_datetime(us: int) -> datetime:
    """Microseconds since the epoch -> naive UTC datetime (Spark's session time zone is UTC)."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).replace(tzinfo=None)


def alert_level(total: int | None, any_parameter_3: bool) -> str | None:
    """high (NEWS2 >= 7, emergency), medium (>= 5), single_parameter (a parameter scoring 3), else None."""
    if total is not None and total >= 7:
        return "high"
    if total is not None and total >= 5:
        return "medium"
    if any_parameter_3:
        return "single_parameter"
    return None


def alert_id(patient_ref: str, level: str, observation_us: int) -> str:
    """Deterministic id of the alert opened for ``patient_ref`` at ``level`` by the observation at that time."""
    return hashlib.sha256(f"{patient_ref}|{level}|{observation_us}".encode()).hexdigest()


@dataclass
class PatientState:
    """What the real-time query remembers about one patient between micro-batches."""

    vitals: dict[str, tuple[float, int]] = field(default_factory=dict)  # vital -> (value, event µs), latest
    ward: str | None = None
    pending_us: int | None = None  # time of the latest observation, not final yet
    final_us: int | None = None  # time of the latest final observation
    alert: dict[str, Any] | None = None  # the open alert, as published
    ignored: int = 0  # measurements at or before the latest observation time, so far
    # the pending observation as scored by the last step (pending time, processing time, row): finish() at the same
    # processing time returns it instead of scoring it again; not persisted
    _scored: tuple[int, int, dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ persistence in the state store
    def to_json(self) -> str:
        return json.dumps(
            {"v": self.vitals, "w": self.ward, "p": self.pending_us, "f": self.final_us, "a": self.alert,
             "i": self.ignored},
            separators=(",", ":"),
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> PatientState:
        d = json.loads(text)
        return cls(
            vitals={k: (float(v[0]), int(v[1])) for k, v in d["v"].items()},
            ward=d["w"],
            pending_us=d["p"],
            final_us=d["f"],
            alert=d["a"],
            ignored=int(d.get("i", 0)),
        )

    # ------------------------------------------------------------------ the state machine
    def observation(self, patient_ref: str, at_us: int, now_us: int, carry_forward_s: int) -> dict[str, Any]:
        """The scored observation at ``at_us`` from the values known then (a ``gold.news2`` row)."""
        horizon = carry_forward_s * 1_000_000
        values = {v: value for v, (value, t) in self.vitals.items() if t <= at_us and at_us - t <= horizon}
        scores = score_observation(
            respiratory_rate=values.get("respiratory_rate"),
            spo2=values.get("spo2"),
            fio2=values.get("fio2"),
            systolic_bp=values.get("systolic_bp"),
            heart_rate=values.get("heart_rate"),
            temperature=values.get("temperature"),
        )
        at = to_datetime(at_us)
        return {
            "patient_ref": patient_ref,
            "observation_time": at,
            "observation_date": at.date(),
            "ward": self.ward,
            **{v: values.get(v) for v in OBSERVED_VITALS},
            "on_oxygen": None,
            "consciousness": None,
            "spo2_scale": None,
            **scores,
            "last_event_time": at,
            "computed_time": to_datetime(now_us),
        }

    def step(
        self, patient_ref: str, measurements: list[Measurement], now_us: int, carry_forward_s: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Take a micro-batch's measurements (any order); return (final observations, alert events)."""
        final: list[dict[str, Any]] = []
        changed = False
        for m in sorted(measurements, key=lambda m: m.event_us):
            floor = self.pending_us if self.pending_us is not None else self.final_us
            if (floor is not None and m.event_us < floor) or (
                self.final_us is not None and m.event_us <= self.final_us
            ):
                self.ignored += 1  # no new observation; still the vital's latest value if it is newer
                if m.vital not in self.vitals or self.vitals[m.vital][1] < m.event_us:
                    self.vitals[m.vital] = (float(m.value), m.event_us)
                continue
            if self.pending_us is not None and m.event_us > self.pending_us:
                final.append(self.observation(patient_ref, self.pending_us, now_us, carry_forward_s))
                self.final_us = self.pending_us
            self.vitals[m.vital] = (float(m.value), m.event_us)
            self.ward = m.ward if m.ward is not None else self.ward
            self.pending_us = m.event_us
            changed = True
        events: list[dict[str, Any]] = []
        if changed and self.pending_us is not None:
            latest = self.observation(patient_ref, self.pending_us, now_us, carry_forward_s)
            self._scored = (self.pending_us, now_us, latest)
            events = self._follow(latest, now_us)
        return final, events

    def finish(self, patient_ref: str, now_us: int, carry_forward_s: int) -> list[dict[str, Any]]:
        """Make the pending observation final (its hold time passed); returns it, or nothing."""
        if self.pending_us is None:
            return []
        if self._scored is not None and self._scored[:2] == (self.pending_us, now_us):
            row = dict(self._scored[2])  # scored by step() in this micro-batch, from the same values
        else:
            row = self.observation(patient_ref, self.pending_us, now_us, carry_forward_s)
        self.final_us, self.pending_us, self._scored = self.pending_us, None, None
        return [row]

    def expire(self, now_us: int) -> list[dict[str, Any]]:
        """The patient leaves the real-time state (no data for the state's time to live): the open alert, if any,
        closes without a closing observation; returns that event, or nothing."""
        if self.alert is None:
            return []
        event = {**_alert_row(self.alert), "status": "closed", "closed_time": to_datetime(now_us)}
        self.alert = None
        return [event]

    def _follow(self, obs: dict[str, Any], now_us: int) -> list[dict[str, Any]]:
        """Alert events for the latest observation: close the open alert if its level no longer holds,
        open one for the new level."""
        level = alert_level(obs["news2_total"], obs["any_parameter_3"])
        if self.alert is not None and self.alert["level"] == level:
            return []
        events: list[dict[str, Any]] = []
        at = obs["observation_time"]
        if self.alert is not None:
            events.append(
                {**_alert_row(self.alert), "status": "closed", "closed_observation_time": at,
                 "closed_time": to_datetime(now_us)}
            )  # fmt: skip
            self.alert = None
        if level is not None:
            obs_us = self.pending_us
            assert obs_us is not None
            self.alert = {
                "alert_id": alert_id(obs["patient_ref"], level, obs_us),
                "patient_ref": obs["patient_ref"],
                "ward": obs["ward"],
                "level": level,
                "news2_total": obs["news2_total"],
                "triggering_parameters": [
                    k.removeprefix("score_") for k, v in obs.items() if k.startswith("score_") and v == 3
                ],
                "opened_us": obs_us,
                "opened_time_us": now_us,
            }
            events.append({**_alert_row(self.alert), "status": "open"})
        return events


def _alert_row(alert: dict[str, Any]) -> dict[str, Any]:
    """A ``gold.alerts`` row (open) from the stored alert."""
    opened = to_datetime(int(alert["opened_us"]))
    opened_date: date = opened.date()
    return {
        "alert_id": alert["alert_id"],
        "patient_ref": alert["patient_ref"],
        "ward": alert["ward"],
        "level": alert["level"],
        "status": "open",
        "news2_total": alert["news2_total"],
        "triggering_parameters": list(alert["triggering_parameters"]),
        "opened_observation_time": opened,
        "opened_event_time": opened,
        "opened_time": to_datetime(int(alert["opened_time_us"])),
        "latest_observation_time": opened,
        "latest_total": alert["news2_total"],
        "closed_observation_time": None,
        "closed_time": None,
        "opened_date": opened_date,
    }
