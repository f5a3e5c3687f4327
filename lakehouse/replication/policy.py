"""Residency: whether a table may leave its region, and in what form (``replication.tables`` in config)."""

from __future__ import annotations

from collections.abc import Mapping

from lakehouse.config import PSEUDONYMOUS_PROPERTY
from lakehouse.errors import LakehouseError


class ResidencyViolation(LakehouseError):
    """Replicating a table would break its residency policy; nothing of it was copied."""


def check_residency(table: str, policy: str, configuration: Mapping[str, str] | None, version: int) -> None:
    """Refuse (raise :class:`ResidencyViolation`) to copy ``version`` of ``table`` out of its region when its
    policy forbids it: ``forbidden`` always, ``pseudonymous`` unless the table's Delta properties at that
    version (``configuration``) declare ``lakehouse.residency.patientIds = pseudonymous``."""
    if policy == "allowed":
        return
    if policy == "forbidden":
        raise ResidencyViolation(
            f"{table}: residency policy 'forbidden': the table may not leave its region",
            fix=f"remove {table} from replication.tables, or change its policy if the data protection officer agrees",
        )
    if policy == "pseudonymous":
        declared = (configuration or {}).get(PSEUDONYMOUS_PROPERTY)
        if declared != "pseudonymous":
            raise ResidencyViolation(
                f"{table}: residency policy 'pseudonymous' but version {version} does not declare pseudonymous "
                f"patient identifiers ({PSEUDONYMOUS_PROPERTY} = {declared!r})",
                fix=f"pseudonymise the table and set TBLPROPERTIES ('{PSEUDONYMOUS_PROPERTY}' = 'pseudonymous')",
            )
        return
    raise ResidencyViolation(f"{table}: unknown residency policy {policy!r}")
