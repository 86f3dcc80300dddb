"""Schemathesis against the OpenAPI document: no 5xx, and every response matches the schema.

Left out of the generated requests: the event streams (they stay open while
tasks run) and ``POST /tasks`` (it would start real ingest, transcription and
embedding in the background); tests/test_api_tasks.py covers them.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

import os  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from _feedback import add_item  # noqa: E402
from atlas.api import create_app  # noqa: E402
from atlas.library import Library  # noqa: E402

#: No 5xx, documented status codes and content types, bodies that match the schema.
#: (Not "every schema-valid request is accepted": the schema does not spell out
#: every rule of the services, such as no control characters in a tag.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Generated requests per operation (``ATLAS_SCHEMA_EXAMPLES`` for more).
EXAMPLES = int(os.environ.get("ATLAS_SCHEMA_EXAMPLES", "20"))


def _schema(atlas):
    app = create_app(Library(atlas))
    return (
        schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
        .exclude(path_regex="/events$")
        .exclude(method="POST", path="/api/v1/tasks")
    )


def test_api_conforms_to_its_openapi_document(atlas):
    for n in range(3):
        add_item(atlas.engine, f"Film {n}", auto=["space", "crime"], genre="Drama")
    operations = [result.ok() for result in _schema(atlas).get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            case.call_and_validate(checks=CHECKS)

        check()
