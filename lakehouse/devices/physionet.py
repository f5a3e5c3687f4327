"""Replay of the PhysioNet/CinC Challenge 2019 sepsis data as vitals.v1 device messages.

Source grain: one ``.psv`` file per ICU patient, one row per ICU hour (``ICULOS``), read straight from
``training_setA.tar.gz`` (streamed, never extracted) or from a directory of ``.psv`` files.
Message grain: one message per patient per ICU hour that has at least one device vital; the patient
is its own replay device (``pn-<patient_id>``) and ``ICULOS`` is both ``seq`` and the event-time
offset from a replay origin, so re-running a replay resends the same message ids.

Data: Reyna MA et al., Crit Care Med 48(2):210-217 (2020), doi:10.1097/CCM.0000000000004145;
dataset doi:10.13026/v64v-d857 (CC BY 4.0); see data/physionet2019-sample/README.md.
"""

from __future__ import annotations

import heapq
import math
import re
import tarfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.config import PROJECT_ROOT
from lakehouse.errors import InputError, LakehouseError

if TYPE_CHECKING:
    from lakehouse.config import Config
    from lakehouse.ingest.registry import Assignment

SAMPLE_ARCHIVE = PROJECT_ROOT / "data/physionet2019-sample/training_setA_sample.tar.gz"
DATASET = "physionet2019"
CONTRACT = "vitals.v1"
DEVICE_TYPE = "replay"
DEVICE_PREFIX = "pn-"

# The vital-sign columns of the .psv files, in file order (EtCO2 is read but is not a contract vital).
VITAL_COLUMNS: tuple[str, ...] = ("HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp", "FiO2", "EtCO2")

# .psv column -> (vitals.v1 vital, unit as sent). FiO2 is a fraction in the data, sent with UCUM unit "1"
# (silver converts it to %). EtCO2 and the laboratory columns are not device vitals and are not sent.
CONTRACT_VITALS: Mapping[str, tuple[str, str]] = {
    "HR": ("heart_rate", "/min"),
    "O2Sat": ("spo2", "%"),
    "Temp": ("temperature", "Cel"),
    "SBP": ("systolic_bp", "mm[Hg]"),
    "DBP": ("diastolic_bp", "mm[Hg]"),
    "MAP": ("mean_arterial_pressure", "mm[Hg]"),
    "Resp": ("respiratory_rate", "/min"),
    "FiO2": ("fio2", "1"),
}

# Namespace of the deterministic message ids: uuid5(MESSAGE_NAMESPACE, "<patient_id>/<ICULOS>").
MESSAGE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://doi.org/10.13026/v64v-d857")

_PATIENT_FILE = re.compile(r"(?:^|/)(p\d+)\.psv$")
_REQUIRED_COLUMNS = (*VITAL_COLUMNS, "Age", "Gender", "Unit1", "Unit2", "HospAdmTime", "ICULOS", "SepsisLabel")


@dataclass(frozen=True)
class PatientHour:
    """One row of a patient's .psv file: one ICU hour; ``None`` wherever the file says ``NaN``."""

    iculos: int
    vitals: Mapping[str, float | None]  # keyed by the .psv column names in VITAL_COLUMNS
    sepsis_label: int
    age: float | None
    gender: int | None
    unit1: int | None
    unit2: int | None
    hosp_adm_time: float | None

    def has_device_vitals(self) -> bool:
        """True when at least one of the contract vitals (CONTRACT_VITALS) was measured this hour."""
        return any(self.vitals.get(column) is not None for column in CONTRACT_VITALS)


@dataclass(frozen=True)
class PatientRecord:
    """One ICU stay: the patient id (``p000001``) and its hourly rows in ICULOS order."""

    patient_id: str
    rows: tuple[PatientHour, ...]

    @property
    def septic(self) -> bool:
        """True when any hour carries SepsisLabel 1 (the patient develops sepsis during the stay)."""
        return any(row.sepsis_label == 1 for row in self.rows)

    @property
    def max_iculos(self) -> int:
        """The last ICU hour of the stay (0 for a record without rows)."""
        return max((row.iculos for row in self.rows), default=0)


@dataclass(frozen=True)
class ReplayStats:
    """What one replay sent: patients, messages, rows without vitals (no message), ICU hours, wall seconds."""

    patients: int
    messages: int
    rows_skipped_no_vitals: int
    hours: int
    seconds: float


# --------------------------------------------------------------------------- reading .psv files


def _optional_float(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) else value


def _optional_int(text: str) -> int | None:
    value = _optional_float(text)
    return None if value is None else int(value)


def parse_psv(patient_id: str, text: str) -> PatientRecord:
    """Parse one patient's pipe-separated file (header line first) into a :class:`PatientRecord`."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise LakehouseError(f"{patient_id}.psv is empty (expected a header line and hourly rows)")
    header = lines[0].strip().split("|")
    missing = [c for c in _REQUIRED_COLUMNS if c not in header]
    if missing:
        raise LakehouseError(f"{patient_id}.psv lacks the column(s) {', '.join(missing)}")
    index = {column: i for i, column in enumerate(header)}
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.strip().split("|")
        if len(fields) != len(header):
            raise LakehouseError(f"{patient_id}.psv line {number}: {len(fields)} fields, header has {len(header)}")
        iculos = _optional_int(fields[index["ICULOS"]])
        if iculos is None:
            raise LakehouseError(f"{patient_id}.psv line {number}: ICULOS is NaN")
        rows.append(
            PatientHour(
                iculos=iculos,
                vitals={column: _optional_float(fields[index[column]]) for column in VITAL_COLUMNS},
                sepsis_label=_optional_int(fields[index["SepsisLabel"]]) or 0,
                age=_optional_float(fields[index["Age"]]),
                gender=_optional_int(fields[index["Gender"]]),
                unit1=_optional_int(fields[index["Unit1"]]),
                unit2=_optional_int(fields[index["Unit2"]]),
                hosp_adm_time=_optional_float(fields[index["HospAdmTime"]]),
            )
        )
    rows.sort(key=lambda row: row.iculos)
    return PatientRecord(patient_id=patient_id, rows=tuple(rows))


def patient_id_of(name: str) -> str | None:
    """The patient id of a .psv file name or archive member (``training_setA/p000001.psv`` -> ``p000001``)."""
    match = _PATIENT_FILE.search(name)
    return match.group(1) if match else None


def require_archive(archive: Path) -> Path:
    """``archive`` itself, when it exists (a .tar.gz or a folder of .psv files); else an InputError."""
    if not archive.exists():
        raise InputError(
            f"PhysioNet data {archive} does not exist",
            fix=f"give training_setA.tar.gz or a folder of .psv files (the committed sample: {SAMPLE_ARCHIVE})",
        )
    return archive


def iter_psv_files(archive: Path) -> Iterator[tuple[str, str, bytes]]:
    """Yield (patient id, member or file name, raw bytes) of every patient file, in storage order.

    ``archive`` is a tar archive (any compression, read as a stream without extracting) or a directory
    searched recursively for ``pNNNNNN.psv`` files.
    """
    if archive.is_dir():
        for path in archive.rglob("p*.psv"):
            pid = patient_id_of(path.name)
            if pid is not None and path.is_file():
                yield pid, path.relative_to(archive).as_posix(), path.read_bytes()
        return
    require_archive(archive)
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                pid = patient_id_of(member.name)
                if pid is None or not member.isfile():
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    yield pid, member.name, handle.read()
    except tarfile.TarError as exc:
        raise LakehouseError(
            f"{archive} is not a readable tar archive ({exc})",
            fix="pass a .tar.gz of .psv files (like training_setA.tar.gz) or a directory of .psv files",
        ) from None


def iter_patients(archive: Path, patients: int | None = None) -> Iterator[PatientRecord]:
    """Patients of a .tar.gz or directory of .psv files, sorted by patient id; the first ``patients`` only.

    With a limit, memory holds only that many raw files while the archive streams past.
    """
    files = ((pid, data) for pid, _, data in iter_psv_files(archive))
    if patients is None:
        chosen = sorted(files, key=lambda item: item[0])
    else:
        chosen = heapq.nsmallest(max(patients, 0), files, key=lambda item: item[0])
    previous: str | None = None
    for pid, data in chosen:
        if pid == previous:
            raise LakehouseError(f"patient {pid} appears twice in {archive}")
        previous = pid
        yield parse_psv(pid, data.decode("utf-8"))


# --------------------------------------------------------------------------- mapping to vitals.v1


def message_id(patient_id: str, iculos: int) -> str:
    """Deterministic message id of a patient's ICU hour, so a re-run replay resends the same ids."""
    return str(uuid.uuid5(MESSAGE_NAMESPACE, f"{patient_id}/{iculos}"))


def measurements(row: PatientHour) -> list[dict[str, Any]]:
    """The contract measurements of one hour: every measured vital in CONTRACT_VITALS, with its unit."""
    return [
        {"vital": vital, "value": value, "unit": unit}
        for column, (vital, unit) in CONTRACT_VITALS.items()
        if (value := row.vitals.get(column)) is not None
    ]


def to_message(patient_id: str, row: PatientHour, origin: datetime) -> dict[str, Any] | None:
    """The vitals.v1 message of one patient-hour (event time = origin + ICULOS hours); None without vitals."""
    values = measurements(row)
    if not values:
        return None
    event_time = origin.astimezone(UTC) + timedelta(hours=row.iculos)
    return {
        "contract": CONTRACT,
        "message_id": message_id(patient_id, row.iculos),
        "device_id": DEVICE_PREFIX + patient_id,
        "device_type": DEVICE_TYPE,
        "patient_ref": patient_id,
        "event_time": event_time.isoformat().replace("+00:00", "Z"),
        "seq": row.iculos,
        "measurements": values,
        "source": {"dataset": DATASET, "iculos": row.iculos, "sepsis_label": row.sepsis_label},
    }


def _hours_of(record: PatientRecord) -> Iterator[tuple[int, str, PatientHour]]:
    return ((row.iculos, record.patient_id, row) for row in record.rows)


def replay_messages(records: Iterable[PatientRecord], origin: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    """(device id, message) pairs interleaved by ICU hour: every patient's hour h, then hour h+1, ...

    Within an hour patients come in patient-id order, so event time never decreases; hours without
    any device vital yield nothing. ``origin`` must be timezone-aware.
    """
    if origin.tzinfo is None:
        raise ValueError("origin must be timezone-aware (UTC)")
    streams = [_hours_of(record) for record in records]
    for _, patient_id, row in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        message = to_message(patient_id, row, origin)
        if message is not None:
            yield message["device_id"], message


def default_origin(records: Iterable[PatientRecord], now: datetime | None = None) -> datetime:
    """Replay origin: now (UTC, floored to the hour) minus the largest ICULOS, so all event times are past."""
    current = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return current - timedelta(hours=max((r.max_iculos for r in records), default=0))


# --------------------------------------------------------------------------- pacing and sending


def paced_by_hour(
    messages: Iterable[tuple[str, dict[str, Any]]],
    speed: float,
    on_hour: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Pass hour-ordered ``messages`` through, releasing ICU hour h at (h - first hour) * 3600 / speed s.

    Wall time follows event time, so an hour in which no patient has vitals is a pause too. ``speed``
    0 or infinity means no waiting. ``on_hour(hours, messages)`` is called after each ICU hour that
    had messages has been handed on, with the running totals.
    """
    interval = 0.0 if speed <= 0 or math.isinf(speed) else 3600.0 / speed
    start = clock()
    first: int | None = None
    sent = 0
    for hours, (hour, group) in enumerate(groupby(messages, key=lambda item: int(item[1]["seq"])), start=1):
        first = hour if first is None else first
        if interval and (wait := start + (hour - first) * interval - clock()) > 0:
            sleep(wait)
        for item in group:
            sent += 1
            yield item
        if on_hour is not None:
            on_hour(hours, sent)


def replay(
    cfg: Config,
    archive: Path = SAMPLE_ARCHIVE,
    patients: int | None = None,
    speed: float = 0.0,
    region: str | None = None,
    progress: Callable[[str], None] = print,
    progress_every_s: float = 5.0,
) -> ReplayStats:
    """Replay PhysioNet patients into the region's telemetry topic, one ICU hour per 3600/speed seconds."""
    from lakehouse.io import kafka  # imported here: reading and mapping the data needs no Kafka client

    if speed < 0 or math.isnan(speed):
        raise LakehouseError(f"replay speed must be >= 0 (0 = as fast as possible), got {speed}")
    reg = cfg.region(region)
    topic = cfg.topics.telemetry
    records = list(iter_patients(archive, patients))
    rows = sum(len(r.rows) for r in records)
    skipped = sum(not row.has_device_vitals() for r in records for row in r.rows)
    origin = default_origin(records)
    pace = "as fast as possible" if speed == 0 or math.isinf(speed) else f"1 ICU hour per {3600 / speed:g} s"
    progress(f"replaying {len(records)} PhysioNet patients ({rows} patient-hours) to {topic} in {reg.name}, {pace}")
    kafka.ensure_topic(reg, topic, cfg.topics, kafka.DEVICE)

    started = time.monotonic()
    last_line = started
    hours_sent = 0

    def on_hour(hours: int, sent: int) -> None:
        nonlocal last_line, hours_sent
        hours_sent = hours
        now = time.monotonic()
        if now - last_line >= progress_every_s:
            last_line = now
            progress(f"  {hours} ICU hours, {sent} messages sent ({sent / max(now - started, 1e-9):.0f} msg/s)")

    stream = paced_by_hour(replay_messages(records, origin), speed, on_hour=on_hour)
    sent = kafka.produce_json(reg, topic, stream)
    seconds = time.monotonic() - started
    stats = ReplayStats(
        patients=len(records),
        messages=sent,
        rows_skipped_no_vitals=skipped,
        hours=hours_sent,
        seconds=seconds,
    )
    progress(
        f"replay done: {stats.hours} ICU hours, {stats.messages} messages from {stats.patients} patients "
        f"({stats.rows_skipped_no_vitals} hours without vitals skipped) in {seconds:.1f} s "
        f"({stats.messages / max(seconds, 1e-9):.0f} msg/s)"
    )
    return stats


def assignments(records: Iterable[PatientRecord], effective_from: datetime, region: str) -> list[Assignment]:
    """Registry rows for replayed patients: one device each, ward from the ICU unit columns (MICU/SICU)."""
    from lakehouse.ingest.registry import Assignment

    out: list[Assignment] = []
    for r in records:
        first = r.rows[0] if r.rows else None
        ward = "MICU" if first and first.unit1 == 1 else "SICU" if first and first.unit2 == 1 else "ICU"
        out.append(
            Assignment(f"{DEVICE_PREFIX}{r.patient_id}", DEVICE_TYPE, r.patient_id, ward, region, effective_from)
        )
    return out
