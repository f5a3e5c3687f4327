"""The tracking server's app on the local stack (``mlflow server --app-name lakehouse-auth``): MLflow's own
basic-auth app, plus a record of every request it refuses.

Each 401 or 403 becomes one JSON line in the file ``$LAKEHOUSE_MLFLOW_DENIALS`` names (time, status, the user
name the client gave or none, method, path, client address; never the password). The lakehouse exporter
forwards those lines to ``ops.audit_log`` (:mod:`lakehouse.security.mlflow_audit`). Everything else, users,
permissions and the admin's bootstrap from ``MLFLOW_AUTH_ADMIN_PASSWORD``, is MLflow's basic-auth app unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lakehouse.security.denials import append, denial

DENIALS_ENV = "LAKEHOUSE_MLFLOW_DENIALS"


def create_app() -> Any:
    """MLflow's basic-auth app with an ``after_request`` hook that appends each refusal to the denials file."""
    from flask import Response, request
    from mlflow.server import app
    from mlflow.server.auth import create_app as basic_auth

    target = os.environ.get(DENIALS_ENV)
    path = Path(target) if target else None

    def record_denial(response: Response) -> Response:
        if path is not None and response.status_code in (401, 403):
            auth = request.authorization
            append(path, denial(response.status_code, auth.username if auth else None, request.method, request.path,
                                request.remote_addr))  # fmt: skip
        return response

    app.after_request(record_denial)
    return basic_auth(app)
