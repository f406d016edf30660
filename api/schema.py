"""The OpenAPI schema's parts drf-spectacular cannot see: how keys are sent, and the errors.

Every operation may answer with the structured errors of ``api.errors``; listing them lets a
client (and schemathesis) check those answers against the schema like the others.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERRORS = {
    "400": "The request is not valid; each error names its field.",
    "401": "No key, or an unknown, revoked or expired one.",
    "403": "The key may not do this: read-only, its role, or its address.",
    "404": "Not found, or not the key's to see.",
    "409": "A request with this Idempotency-Key is still being answered.",
    "422": "This Idempotency-Key was used for a different request.",
    "429": (
        "Too many requests for this key (wait as long as Retry-After says), or a customer's "
        "restores or downloads spent for now (BACKUP_FAIR_USE_WINDOW)."
    ),
}

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {
                        "type": ["string", "null"],
                        "description": "The field at fault; null for the whole request.",
                    },
                    "code": {"type": "string", "description": "A stable code, e.g. invalid."},
                    "message": {
                        "type": "string",
                        "description": "For people, in the Accept-Language asked for.",
                    },
                },
                "required": ["field", "code", "message"],
            },
        }
    },
    "required": ["errors"],
}

WRITES = {"post", "put", "patch"}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Authorization: Bearer postamt_<key id>_<secret>",
        }


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A postprocessing hook: the error answers of each operation, and their schema."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            codes = ["400", "401", "403", "429"]
            if "{" in path:
                codes.append("404")
            if method in WRITES:
                codes += ["409", "422"]
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(code, {"description": ERRORS[code], "content": reference})
    return result
