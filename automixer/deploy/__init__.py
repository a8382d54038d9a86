"""Deployments on a Prefect server: register them, trigger runs, read their parameter schema.

Everything here talks to the API in ``PREFECT_API_URL`` (a Prefect server or Cloud). There is no
point in an ephemeral API here: a deployment only matters where workers poll for it.

- :mod:`.register`: :func:`deploy` registers the deployments of ``deployments/prefect.yaml`` with
  Prefect's own ``prefect deploy`` (the documented path; it loads each entrypoint for its parameter
  schema).
- :mod:`.runs`: :func:`trigger` creates a flow run of a deployment, optionally idempotent (the same
  key returns the same run, so CI re-runs and retries never start a second remix), and waits for a
  final state.
- :mod:`.form`: :func:`parameter_schema` returns the deployment's ``parameter_openapi_schema`` (what
  the UI renders as the run form).
- :mod:`.api`: the client on ``PREFECT_API_URL``, :class:`DeploymentError` and the helpers the others
  share.
"""

from automixer.deploy.api import DeploymentError
from automixer.deploy.form import FormField, form_fields, local_parameter_schema, parameter_schema
from automixer.deploy.register import deploy, deployment_names, read_prefect_yaml
from automixer.deploy.runs import TriggerResult, trigger

__all__ = [
    "DeploymentError",
    "FormField",
    "TriggerResult",
    "deploy",
    "deployment_names",
    "form_fields",
    "local_parameter_schema",
    "parameter_schema",
    "read_prefect_yaml",
    "trigger",
]
