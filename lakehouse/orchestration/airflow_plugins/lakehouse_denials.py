"""The local stack's Airflow plugin (``AIRFLOW__CORE__PLUGINS_FOLDER`` names this folder): the api-server records
every request it refuses (:mod:`lakehouse.security.airflow_denials`)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from lakehouse.security.airflow_denials import DenialLog


class LakehouseDenialsPlugin(AirflowPlugin):
    name = "lakehouse_denials"
    # Airflow's plugin interface is class attributes
    fastapi_root_middlewares = [  # noqa: RUF012
        {"middleware": DenialLog, "args": [], "kwargs": {}, "name": "lakehouse-denials"}
    ]
