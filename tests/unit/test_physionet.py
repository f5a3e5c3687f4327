"""PhysioNet 2019 replay: .psv parsing, the committed sample, mapping to vitals.v1, ordering and pacing."""

from __future__ import annotations

import hashlib
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lakehouse.config import CONF_DIR
from lakehouse.devices import physionet
from lakehouse.devices.physionet import PatientHour, PatientRecord

# The 41 columns of the real files, in their order.
COLUMNS = (
    "HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp", "EtCO2", "BaseExcess", "HCO3", "FiO2", "pH", "PaCO2",
    "SaO2", "AST", "BUN", "Alkalinephos", "Calcium", "Chloride", "Creatinine", "Bilirubin_direct", "Glucose",
    "Lactate", "Magnesium", "Phosphate", "Potassium", "Bilirubin_total", "TroponinI", "Hct", "Hgb", "PTT",
    "WBC", "Fibrinogen", "Platelets", "Age", "Gender", "Unit1", "Unit2", "HospAdmTime", "ICULOS",
    "SepsisLabel",
)  # fmt: skip
ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)
SAMPLE_DIR = physionet.SAMPLE_ARCHIVE.parent


def psv(*rows: dict[str, Any]) -> str:
    """A .psv text with the real 41-column header; every column a row does not name is NaN."""
    base = {"Age": 61.5, "Gender": 1, "HospAdmTime": -0.03, "SepsisLabel": 0}
    lines = ["|".join(COLUMNS)]
    lines += ["|".join(str({**base, **row}.get(c, "NaN")) for c in COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


TINY = {
    "p000007": psv(
        {"ICULOS": 1},  # nothing measured: no message
        {"ICULOS": 2, "HR": 97, "O2Sat": 95, "SBP": 98, "MAP": 75.33, "Resp": 19, "Unit1": 0, "Unit2": 1},
        {"ICULOS": 3, "EtCO2": 35, "Lactate": 2.1},  # not device vitals: no message
        {"ICULOS": 4, "Temp": 38.2, "DBP": 61, "FiO2": 0.4, "SepsisLabel": 1},
    ),
    "p000003": psv({"ICULOS": 3, "HR": 80}, {"ICULOS": 4, "HR": 82}, {"ICULOS": 5, "HR": 85, "Gender": "NaN"}),
}


@pytest.fixture()
def tiny_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "psv"
    folder.mkdir()
    for pid, text in TINY.items():
        (folder / f"{pid}.psv").write_text(text)
    (folder / "notes.txt").write_text("not a patient file")
    return folder


@pytest.fixture()
def tiny_tar(tmp_path: Path, tiny_dir: Path) -> Path:
    path = tmp_path / "tiny.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for pid in TINY:  # stored out of id order on purpose
            tar.add(tiny_dir / f"{pid}.psv", arcname=f"training_setA/{pid}.psv")
    return path


@pytest.fixture(scope="module")
def sample() -> list[PatientRecord]:
    return list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((CONF_DIR / "contracts" / "vitals.v1.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def row(**vitals: float | None) -> PatientHour:
    """An hour with the given .psv vital columns measured and the others missing."""
    values = dict.fromkeys(physionet.VITAL_COLUMNS) | vitals
    return PatientHour(5, values, 0, 70.0, 0, 1, 0, -1.0)


# --------------------------------------------------------------------------- reading


def test_psv_rows_parse_with_nan_as_none(tiny_dir: Path) -> None:
    records = list(physionet.iter_patients(tiny_dir))
    assert [r.patient_id for r in records] == ["p000003", "p000007"]
    p7 = records[1]
    assert [h.iculos for h in p7.rows] == [1, 2, 3, 4]
    assert all(v is None for v in p7.rows[0].vitals.values())
    assert p7.rows[1].vitals == {
        "HR": 97.0, "O2Sat": 95.0, "Temp": None, "SBP": 98.0, "MAP": 75.33,
        "DBP": None, "Resp": 19.0, "FiO2": None, "EtCO2": None,
    }  # fmt: skip
    assert (p7.rows[1].unit1, p7.rows[1].unit2, p7.rows[0].unit1) == (0, 1, None)
    assert (p7.rows[0].age, p7.rows[0].gender, p7.rows[0].hosp_adm_time) == (61.5, 1, -0.03)
    assert records[0].rows[2].gender is None
    assert [h.sepsis_label for h in p7.rows] == [0, 0, 0, 1]
    assert p7.septic and not records[0].septic
    assert (p7.max_iculos, records[0].max_iculos) == (4, 5)


def test_tar_and_directory_give_identical_records(tiny_dir: Path, tiny_tar: Path) -> None:
    assert list(physionet.iter_patients(tiny_tar)) == list(physionet.iter_patients(tiny_dir))
    assert [r.patient_id for r in physionet.iter_patients(tiny_tar, patients=1)] == ["p000003"]


def test_sample_archive_equals_its_extraction(tmp_path: Path, sample: list[PatientRecord]) -> None:
    with tarfile.open(physionet.SAMPLE_ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    assert list(physionet.iter_patients(tmp_path / "training_setA")) == sample


def test_sample_has_300_patients_matching_its_checksums(sample: list[PatientRecord]) -> None:
    files = {name: data for _, name, data in physionet.iter_psv_files(physionet.SAMPLE_ARCHIVE)}
    listed = (SAMPLE_DIR / "SHA256SUMS.psv").read_text().splitlines()
    assert [f"{hashlib.sha256(files[name]).hexdigest()}  {name}" for name in sorted(files)] == listed
    assert len(files) == len(sample) == 300
    assert all(name.startswith("training_setA/p") for name in files)
    assert sum(r.septic for r in sample) == 60
    assert [r.patient_id for r in sample] == sorted(r.patient_id for r in sample)
    assert physionet.SAMPLE_ARCHIVE.stat().st_size < 1_000_000


def test_patient_limit_takes_the_first_ids(sample: list[PatientRecord]) -> None:
    assert list(physionet.iter_patients(physionet.SAMPLE_ARCHIVE, patients=4)) == sample[:4]


def test_missing_archive_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(physionet.LakehouseError, match="does not exist"):
        list(physionet.iter_patients(tmp_path / "nope.tar.gz"))


# --------------------------------------------------------------------------- mapping


@pytest.mark.parametrize(
    ("column", "value", "vital", "unit"),
    [
        ("HR", 97.0, "heart_rate", "/min"),
        ("O2Sat", 95.0, "spo2", "%"),
        ("Temp", 37.4, "temperature", "Cel"),
        ("SBP", 120.0, "systolic_bp", "mm[Hg]"),
        ("DBP", 70.0, "diastolic_bp", "mm[Hg]"),
        ("MAP", 86.67, "mean_arterial_pressure", "mm[Hg]"),
        ("Resp", 18.0, "respiratory_rate", "/min"),
        ("FiO2", 0.4, "fio2", "1"),  # a fraction, converted to % by silver
    ],
)
def test_each_vital_maps_to_its_contract_name_and_unit(column: str, value: float, vital: str, unit: str) -> None:
    assert physionet.measurements(row(**{column: value})) == [{"vital": vital, "value": value, "unit": unit}]


def test_rows_without_device_vitals_send_nothing() -> None:
    assert physionet.to_message("p000001", row(), ORIGIN) is None
    assert physionet.to_message("p000001", row(EtCO2=35.0), ORIGIN) is None
    assert not row(EtCO2=35.0).has_device_vitals() and row(FiO2=0.5).has_device_vitals()


def test_message_carries_device_identity_time_and_label(tiny_dir: Path) -> None:
    records = list(physionet.iter_patients(tiny_dir))
    messages = {(m["patient_ref"], m["seq"]): m for _, m in physionet.replay_messages(records, ORIGIN)}
    assert sorted(messages) == [("p000003", 3), ("p000003", 4), ("p000003", 5), ("p000007", 2), ("p000007", 4)]
    m = messages[("p000007", 4)]
    assert {k: v for k, v in m.items() if k not in ("message_id", "measurements")} == {
        "contract": "vitals.v1",
        "device_id": "pn-p000007",
        "device_type": "replay",
        "patient_ref": "p000007",
        "event_time": "2024-01-01T04:00:00Z",
        "seq": 4,
        "source": {"dataset": "physionet2019", "iculos": 4, "sepsis_label": 1},
    }
    assert m["measurements"] == [
        {"vital": "temperature", "value": 38.2, "unit": "Cel"},
        {"vital": "diastolic_bp", "value": 61.0, "unit": "mm[Hg]"},
        {"vital": "fio2", "value": 0.4, "unit": "1"},
    ]


def test_message_ids_are_deterministic_and_unique(sample: list[PatientRecord]) -> None:
    first = [m["message_id"] for _, m in physionet.replay_messages(sample, ORIGIN)]
    rerun = [m["message_id"] for _, m in physionet.replay_messages(sample, ORIGIN + timedelta(days=3))]
    assert first == rerun
    assert len(set(first)) == len(first)
    assert first[0] == physionet.message_id("p000001", 2)


def test_sample_messages_interleave_hours_and_match_their_rows(sample: list[PatientRecord]) -> None:
    pairs = list(physionet.replay_messages(sample, ORIGIN))
    order = [(m["seq"], m["patient_ref"]) for _, m in pairs]
    assert order == sorted(order)  # all patients' hour h before anyone's hour h+1, patients in id order
    times = [m["event_time"] for _, m in pairs]
    assert times == sorted(times)
    rows = {(r.patient_id, h.iculos): h for r in sample for h in r.rows}
    for key, m in pairs:
        assert key == m["device_id"] == "pn-" + m["patient_ref"]
        hour = rows[(m["patient_ref"], m["seq"])]
        assert m["measurements"] == physionet.measurements(hour)
        assert m["source"]["sepsis_label"] == hour.sepsis_label
    skipped = sum(not h.has_device_vitals() for h in rows.values())
    assert (len(rows), len(pairs), skipped) == (12474, 11586, 888)


def test_every_sample_message_validates_against_the_contract(
    sample: list[PatientRecord], validator: jsonschema.protocols.Validator
) -> None:
    for _, message in physionet.replay_messages(sample, physionet.default_origin(sample)):
        validator.validate(message)


def test_default_origin_puts_every_event_in_the_past(sample: list[PatientRecord]) -> None:
    now = datetime(2025, 6, 1, 12, 34, 56, tzinfo=UTC)
    origin = physionet.default_origin(sample, now=now)
    assert origin == datetime(2025, 6, 1, 12, tzinfo=UTC) - timedelta(hours=max(r.max_iculos for r in sample))
    last = max(m["event_time"] for _, m in physionet.replay_messages(sample, origin))
    assert datetime.fromisoformat(last) <= now


def test_naive_origin_is_refused(sample: list[PatientRecord]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next(physionet.replay_messages(sample, datetime(2024, 1, 1)))


# --------------------------------------------------------------------------- pacing


class FakeClock:
    """A clock that only advances when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("speed", "sleeps"), [(3600.0, [1.0, 3.0]), (7200.0, [0.5, 1.5]), (0.0, []), (float("inf"), [])]
)
def test_pacing_follows_event_time(speed: float, sleeps: list[float]) -> None:
    messages = [("a", {"seq": 2}), ("a", {"seq": 3}), ("b", {"seq": 3}), ("a", {"seq": 6})]
    clock = FakeClock()
    ticks: list[tuple[int, int]] = []
    paced = physionet.paced_by_hour(
        messages, speed, on_hour=lambda h, n: ticks.append((h, n)), clock=clock, sleep=clock.sleep
    )
    assert list(paced) == messages
    assert clock.sleeps == sleeps  # hour 3 one interval after hour 2; hour 6 three after hour 3 (4, 5 empty)
    assert ticks == [(1, 1), (2, 3), (3, 4)]
