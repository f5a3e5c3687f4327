"""The per-patient early-warning state machine: when observations become final, carry-forward, late data, alerts."""

from __future__ import annotations

from lakehouse.clinical.early_warning import Measurement, PatientState, alert_id, alert_level, to_datetime

S = 1_000_000  # one second in microseconds
T0 = 1_795_000_000 * S
CARRY = 3600


def m(seconds: float, vital: str, value: float, ward: str | None = "ICU-1") -> Measurement:
    return Measurement(T0 + int(seconds * S), vital, value, ward)


def times(rows: list[dict]) -> list[float]:  # type: ignore[type-arg]
    return [(r["observation_time"] - to_datetime(T0)).total_seconds() for r in rows]


def test_an_observation_is_final_when_a_newer_measurement_arrives() -> None:
    st = PatientState()
    final, _ = st.step("p1", [m(0, "heart_rate", 70), m(0, "spo2", 98)], T0, CARRY)
    assert final == [] and st.pending_us == T0
    final, _ = st.step("p1", [m(5, "heart_rate", 72)], T0 + 5 * S, CARRY)
    assert times(final) == [0.0]
    assert (final[0]["heart_rate"], final[0]["spo2"]) == (70.0, 98.0)
    assert final[0]["parameters_present"] == ["spo2", "heart_rate"]


def test_a_round_split_over_two_batches_is_one_observation() -> None:
    st = PatientState()
    st.step("p1", [m(0, "heart_rate", 70)], T0, CARRY)
    final, _ = st.step("p1", [m(0, "respiratory_rate", 16)], T0 + S, CARRY)
    assert final == []
    done = st.finish("p1", T0 + 2 * S, CARRY)
    assert times(done) == [0.0] and (done[0]["heart_rate"], done[0]["respiratory_rate"]) == (70.0, 16.0)
    assert st.finish("p1", T0 + 3 * S, CARRY) == []


def test_values_are_carried_forward_until_they_are_too_old() -> None:
    st = PatientState()
    st.step("p1", [m(0, "temperature", 38.5)], T0, CARRY)
    final, _ = st.step("p1", [m(60, "heart_rate", 80), m(CARRY + 1, "heart_rate", 81)], T0, CARRY)
    assert times(final) == [0.0, 60.0]
    assert final[1]["temperature"] == 38.5 and final[1]["score_temperature"] == 1
    last = st.finish("p1", T0, CARRY)[0]
    assert last["temperature"] is None and "temperature" in last["parameters_missing"]


def test_late_and_resent_measurements_make_no_observation_but_update_what_is_known() -> None:
    st = PatientState()
    st.step("p1", [m(10, "heart_rate", 70)], T0, CARRY)
    st.step("p1", [m(20, "heart_rate", 75)], T0, CARRY)  # 10 s is now final
    final, events = st.step("p1", [m(10, "heart_rate", 140), m(5, "spo2", 80), m(20, "heart_rate", 75)], T0, CARRY)
    assert final == [] and st.ignored == 2  # the resend at 20 s merges into the pending one
    # the pending observation (20 s) now knows SpO2 80 (scores 3): a single-parameter alert
    assert [(e["level"], e["triggering_parameters"]) for e in events] == [("single_parameter", ["spo2"])]
    assert st.vitals["heart_rate"] == (75.0, T0 + 20 * S)  # the late 140 at 10 s is older: not the latest
    assert st.vitals["spo2"] == (80.0, T0 + 5 * S)  # the only SpO2 known: the next observation carries it
    assert st.finish("p1", T0, CARRY)[0]["spo2"] == 80.0


def test_final_observation_times_strictly_increase() -> None:
    st = PatientState()
    out: list[dict] = []  # type: ignore[type-arg]
    for batch in ([m(3, "heart_rate", 70), m(1, "spo2", 97)], [m(2, "spo2", 96), m(3, "spo2", 95)], [m(4, "spo2", 94)]):
        out += st.step("p1", batch, T0, CARRY)[0]
    out += st.finish("p1", T0, CARRY)
    assert times(out) == [1.0, 3.0, 4.0]
    assert out[1]["spo2"] == 95.0 and out[1]["heart_rate"] == 70.0


def test_alerts_open_once_per_level_and_close_when_the_level_changes() -> None:
    st = PatientState()
    # RR 26 (3) alone: single parameter
    _, ev = st.step("p1", [m(0, "respiratory_rate", 26)], T0, CARRY)
    assert [(e["status"], e["level"]) for e in ev] == [("open", "single_parameter")]
    assert ev[0]["triggering_parameters"] == ["respiratory_rate"]
    assert ev[0]["alert_id"] == alert_id("p1", "single_parameter", T0)
    # still a single 3: no new alert (deduplicated)
    _, ev = st.step("p1", [m(10, "respiratory_rate", 27)], T0 + 10 * S, CARRY)
    assert ev == []
    # + SpO2 90 (3) + HR 135 (3) => 9: high; the single-parameter alert closes
    _, ev = st.step("p1", [m(20, "spo2", 90), m(20, "heart_rate", 135)], T0 + 20 * S, CARRY)
    assert [(e["status"], e["level"]) for e in ev] == [("closed", "single_parameter"), ("open", "high")]
    assert ev[0]["closed_observation_time"] == to_datetime(T0 + 20 * S) and ev[1]["news2_total"] == 9
    # back to normal: the high alert closes, nothing opens
    _, ev = st.step("p1", [m(30, "respiratory_rate", 16), m(30, "spo2", 97), m(30, "heart_rate", 70)], T0, CARRY)
    assert [(e["status"], e["level"]) for e in ev] == [("closed", "high")] and st.alert is None


def test_alert_levels_follow_the_news2_thresholds() -> None:
    assert alert_level(7, False) == "high" and alert_level(5, False) == "medium"
    assert alert_level(4, True) == "single_parameter" and alert_level(4, False) is None
    assert alert_level(None, False) is None


def test_state_survives_a_json_round_trip() -> None:
    st = PatientState()
    st.step("p1", [m(0, "respiratory_rate", 26), m(0, "heart_rate", 70)], T0, CARRY)
    again = PatientState.from_json(st.to_json())
    assert again == st
    assert again.step("p1", [m(5, "spo2", 97)], T0, CARRY) == st.step("p1", [m(5, "spo2", 97)], T0, CARRY)


def test_finish_in_the_same_batch_returns_the_row_step_scored_and_a_later_finish_scores_again() -> None:
    state = PatientState()
    state.step("p1", [m(0, "heart_rate", 135), m(0, "spo2", 90)], T0 + S, 3600)
    fresh = PatientState.from_json(state.to_json()).observation("p1", T0, T0 + S, 3600)  # scored from scratch
    assert state.finish("p1", T0 + S, 3600) == [fresh] and fresh["news2_total"] == 6
    assert state.finish("p1", T0 + S, 3600) == []  # final once
    held = PatientState()
    held.step("p1", [m(0, "heart_rate", 135)], T0 + S, 3600)
    (row,) = held.finish("p1", T0 + 3 * S, 3600)  # a hold time later: its own processing time
    assert row["computed_time"] == to_datetime(T0 + 3 * S) and row["news2_total"] == 3
