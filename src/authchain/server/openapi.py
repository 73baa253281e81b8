"""The OpenAPI 3.1 document of the authority's HTTP API, written by hand.

Written rather than generated because the wire contract is the point: the token endpoint is a
form-encoded RFC 8693 request with a ``DPoP`` header, and every error shape is fixed (OAuth errors at
``/token``, RFC 9457 problems elsewhere). A test checks that every route of the app is documented
here and that schemathesis, driven by this document, finds no 5xx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from authchain import errors as _errors
from authchain.server.errors import PROBLEM_MEDIA_TYPE, problem_status
from authchain.tokens.hop import TOKEN_EXCHANGE_GRANT_TYPE
from authchain.tokens.id_token import ID_TOKEN_TYPE
from authchain.tokens.task_token import TXN_TOKEN_TYPE_URN

__all__ = ["openapi_document", "PROBLEM_CODES"]

_TOKEN_EXCHANGE = TOKEN_EXCHANGE_GRANT_TYPE
_ID_TOKEN = ID_TOKEN_TYPE
_TXN_TOKEN = TXN_TOKEN_TYPE_URN


def _problem_codes() -> dict[str, tuple[int, str]]:
    """Every problem ``code`` the API can answer with: its status and a one-line title.

    Built from the error tree so a new error class is documented the moment it exists.
    """
    out: dict[str, tuple[int, str]] = {
        "invalid_request": (400, "The request is malformed."),
        "request_timeout": (408, "The request body did not arrive in time."),
        "size_limit": (413, "The request body is too large."),
        "unsupported_media_type": (415, "The body has the wrong media type."),
        "unauthorized": (401, "A valid admin bearer credential is required."),
        "admin_disabled": (403, "The admin API is disabled: no admin credential is configured."),
        "not_found": (404, "No such resource."),
        "method_not_allowed": (405, "The method is not allowed on this resource."),
        "internal_error": (500, "An internal error; it has been logged."),
    }
    for name in _errors.__all__:
        cls = getattr(_errors, name)
        if not (isinstance(cls, type) and issubclass(cls, _errors.AuthchainError)):
            continue
        if cls is _errors.HttpError:
            # Its codes are the edge's own, each listed above with its status.
            continue
        status, code, _ = problem_status(cls.__new__(cls))
        doc = (cls.__doc__ or name).strip().split("\n\n")[0]
        out.setdefault(code, (status, " ".join(doc.split())))
    return out


#: ``code -> (status, title)`` for every problem type, served at ``/problems/{code}``.
PROBLEM_CODES: Final[Mapping[str, tuple[int, str]]] = _problem_codes()

_OAUTH_ERRORS: Final = [
    "invalid_request",
    "invalid_grant",
    "invalid_scope",
    "invalid_target",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "unsupported_grant_type",
    "temporarily_unavailable",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": _ref("Problem")}},
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
    }


_DPOP_HEADER: Final = {
    "name": "DPoP",
    "in": "header",
    "required": False,
    "description": "A DPoP proof (RFC 9449 section 4) signed by the caller's registered key, for "
    "this method and this endpoint's configured URL.",
    "schema": {"type": "string", "maxLength": 4096},
}
_TRACEPARENT: Final = {
    "name": "traceparent",
    "in": "header",
    "required": False,
    "description": "W3C Trace Context; the recorded event joins this trace.",
    "schema": {"type": "string", "maxLength": 64},
}
_ADMIN: Final[list[dict[str, list[str]]]] = [{"adminBearer": []}]
_ADMIN_ERRORS: Final = {
    "400": _problem("Malformed body or refused value."),
    "401": _problem("Missing or wrong admin credential."),
    "403": _problem("The admin API is disabled."),
    "413": _problem("Body too large."),
    "415": _problem("Body is not JSON."),
}
_READ_ERRORS: Final = {
    "400": _problem("Malformed query."),
    "401": _problem("Missing or wrong admin credential (when the log is not public)."),
    "403": _problem("The admin API is disabled (when the log is not public)."),
    "404": _problem("No such entry, size or event."),
}

_SCHEMAS: Final[dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details, with the Authchain error code.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "instance": {"type": "string"},
            "log_index": {"type": "integer", "description": "The log entry recording a refusal."},
        },
    },
    "OAuthError": {
        "type": "object",
        "description": "RFC 6749 section 5.2 error response.",
        "required": ["error", "error_description"],
        "properties": {
            "error": {"type": "string", "enum": _OAUTH_ERRORS},
            "error_description": {"type": "string"},
            "log_index": {"type": "integer"},
        },
    },
    "TokenRequest": {
        "type": "object",
        "description": "RFC 8693 section 2.1 token exchange request. A task start has an ID token "
        "as subject and request_details (its purpose); a hop has a task token and an audience.",
        "required": ["grant_type", "subject_token", "subject_token_type"],
        "properties": {
            "grant_type": {"type": "string", "enum": [_TOKEN_EXCHANGE]},
            "subject_token": {"type": "string"},
            "subject_token_type": {"type": "string", "enum": [_ID_TOKEN, _TXN_TOKEN]},
            "requested_token_type": {"type": "string", "enum": [_TXN_TOKEN]},
            "audience": {"type": "string", "description": "The next actor's SPIFFE ID."},
            "scope": {"type": "string"},
            "request_details": {
                "type": "string",
                "description": "JSON object: the task's purpose and parameters (task start only).",
            },
        },
    },
    "TokenResponse": {
        "type": "object",
        "description": "RFC 8693 section 2.2.1 successful response.",
        "required": ["access_token", "issued_token_type", "token_type", "expires_in", "scope"],
        "properties": {
            "access_token": {"type": "string"},
            "issued_token_type": {"type": "string", "enum": [_TXN_TOKEN]},
            "token_type": {"type": "string", "enum": ["DPoP"]},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
        },
    },
    "JWKS": {
        "type": "object",
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
    },
    "Metadata": {
        "type": "object",
        "description": "RFC 8414 authorization server metadata.",
        "required": [
            "issuer",
            "token_endpoint",
            "jwks_uri",
            "grant_types_supported",
            "dpop_signing_alg_values_supported",
        ],
        "properties": {
            "issuer": {"type": "string"},
            "token_endpoint": {"type": "string"},
            "jwks_uri": {"type": "string"},
            "grant_types_supported": {"type": "array", "items": {"type": "string"}},
            "dpop_signing_alg_values_supported": {"type": "array", "items": {"type": "string"}},
            "subject_token_types_supported": {"type": "array", "items": {"type": "string"}},
            "issued_token_types_supported": {"type": "array", "items": {"type": "string"}},
        },
    },
    "LogIndex": {
        "type": "object",
        "required": ["log_index"],
        "properties": {"log_index": {"type": "integer"}},
    },
    "EventReport": {
        "type": "object",
        "description": "An action a service performed (or refused) after verifying a presented "
        "task token. The request's DPoP proof is the reporting service's own.",
        "required": ["action", "resource"],
        "properties": {
            "action": {"type": "string", "maxLength": 256},
            "resource": {"type": "string", "maxLength": 2048},
            "token": {"type": "string", "description": "The presented task token."},
            "proof": {"type": "string", "description": "The presenter's DPoP proof."},
            "htm": {"type": "string", "description": "The method the presenter's proof covered."},
            "htu": {"type": "string", "description": "The URL the service verified it against."},
            "outcome": {"type": "string", "enum": ["succeeded", "failed", "refused"]},
            "refusal": {"type": "string", "description": "The error code, if refused."},
            "presenter": {"type": "string"},
            "performed_at": {"type": "integer", "description": "Unix seconds."},
            "traceparent": {"type": "string"},
            "report_id": {"type": "string", "description": "Idempotency key of the report."},
            "attrs": {"type": "object"},
        },
    },
    "IssuerRegistration": {
        "type": "object",
        "required": ["issuer", "jwks"],
        "properties": {"issuer": {"type": "string"}, "jwks": _ref("JWKS")},
    },
    "PrincipalRegistration": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string", "enum": ["user", "agent", "tool", "service"]},
            "scopes": {"type": "array", "items": {"type": "string"}},
        },
    },
    "WorkloadRegistration": {
        "type": "object",
        "required": ["id", "kind", "jwk"],
        "properties": {
            "id": {"type": "string", "description": "SPIFFE ID."},
            "kind": {"type": "string", "enum": ["agent", "tool", "service"]},
            "jwk": {"type": "object", "description": "The workload's public JWK."},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "endpoints": {
                "type": "array",
                "maxItems": 16,
                "items": {"type": "string", "maxLength": 2048},
                "description": "URL prefixes the workload serves (https; http for loopback).",
            },
        },
    },
    "Revocation": {
        "type": "object",
        "description": "Exactly one of token, token_hash or txn.",
        "properties": {
            "token": {"type": "string"},
            "token_hash": {"type": "string"},
            "txn": {"type": "string"},
            "reason": {"type": "string", "maxLength": 512},
        },
    },
    "InclusionProof": {
        "type": "object",
        "description": "RFC 9162 section 2.1.3 inclusion proof; hashes are lowercase hex.",
        "required": ["index", "size", "leaf_hash", "proof", "root"],
        "properties": {
            "index": {"type": "integer"},
            "size": {"type": "integer"},
            "leaf_hash": {"type": "string"},
            "proof": {"type": "array", "items": {"type": "string"}},
            "root": {"type": "string"},
        },
    },
    "ConsistencyProof": {
        "type": "object",
        "description": "RFC 9162 section 2.1.4 consistency proof; hashes are lowercase hex.",
        "required": ["old_size", "size", "proof", "old_root", "root"],
        "properties": {
            "old_size": {"type": "integer"},
            "size": {"type": "integer"},
            "proof": {"type": "array", "items": {"type": "string"}},
            "old_root": {"type": "string"},
            "root": {"type": "string"},
        },
    },
    "Entries": {
        "type": "object",
        "required": ["start", "end", "entries"],
        "properties": {
            "start": {"type": "integer"},
            "end": {"type": "integer"},
            "entries": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Report": {"type": "object", "description": "The attribution report of one event."},
}


def openapi_document(server_url: str) -> dict[str, Any]:
    """The document, with ``server_url`` (the configured issuer) as its server."""
    token_errors = {
        "400": _json("OAuth error (RFC 6749 section 5.2, RFC 9449 section 5).", _ref("OAuthError")),
        "503": _json("Temporarily unable to record; nothing was issued.", _ref("OAuthError")),
    }
    paths: dict[str, Any] = {
        "/.well-known/jwks.json": {
            "get": {
                "summary": "The authority's task-token verification keys.",
                "responses": {"200": _json("JWK Set (RFC 7517).", _ref("JWKS"))},
            }
        },
        "/.well-known/oauth-authorization-server": {
            "get": {
                "summary": "Authorization server metadata (RFC 8414).",
                "responses": {"200": _json("Metadata.", _ref("Metadata"))},
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document.", "responses": {"200": _json("OpenAPI.", {})}}
        },
        "/introspect": {
            "post": {
                "summary": "Is a task token still usable? (RFC 7662 token introspection)",
                "parameters": [_DPOP_HEADER],
                "security": [{"dpop": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["token"],
                                "properties": {"token": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json("RFC 7662 section 2.2 answer.", {"type": "object"}),
                    "400": _problem("Malformed request."),
                    "401": _problem("No valid DPoP proof by a registered workload."),
                    "413": _problem("Body too large."),
                    "503": _problem("Temporarily unable to answer (replay cache full)."),
                },
            }
        },
        "/policy": {
            "get": {
                "summary": "The policy set in force, as the canonical document its hash covers.",
                "responses": {
                    "200": _json(
                        "Canonical policy set (format, policies, settings).", {"type": "object"}
                    ),
                    "304": {"description": "Unchanged since the ETag sent in If-None-Match."},
                },
            }
        },
        "/problems/{code}": {
            "get": {
                "summary": "What a problem type means.",
                "parameters": [
                    {
                        "name": "code",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[a-z_]{1,64}$"},
                    }
                ],
                "responses": {
                    "200": _json("The problem type.", {"type": "object"}),
                    "404": _problem("Unknown problem type."),
                },
            }
        },
        "/healthz": {
            "get": {"summary": "Liveness.", "responses": {"200": _json("Up.", {"type": "object"})}}
        },
        "/token": {
            "post": {
                "summary": "Start a task or delegate (RFC 8693 token exchange with DPoP).",
                "parameters": [_DPOP_HEADER, _TRACEPARENT],
                "security": [{"dpop": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": _ref("TokenRequest")}
                    },
                },
                "responses": {
                    "200": _json("The task token.", _ref("TokenResponse")),
                    **token_errors,
                },
            }
        },
        "/events": {
            "post": {
                "summary": "A service reports an action it performed for a presented task token.",
                "parameters": [_DPOP_HEADER, _TRACEPARENT],
                "security": [{"dpop": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("EventReport")}},
                },
                "responses": {
                    "200": _json("Already recorded (same report_id).", _ref("LogIndex")),
                    "201": _json("Recorded.", _ref("LogIndex")),
                    "400": _problem("Malformed report."),
                    "401": _problem("Missing or invalid DPoP proof of a registered workload."),
                    "413": _problem("Body too large."),
                    "415": _problem("Body is not JSON."),
                    "503": _problem("Temporarily unable to record; retry."),
                },
            }
        },
        "/revoke": {
            "post": {
                "summary": "Revoke a token (and its descendants) or a whole task.",
                "security": _ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Revocation")}},
                },
                "responses": {"200": _json("Revoked.", _ref("LogIndex")), **_ADMIN_ERRORS},
            }
        },
    }
    for path, schema, summary in (
        ("/admin/issuers", "IssuerRegistration", "Trust an identity provider's ID tokens."),
        ("/admin/principals", "PrincipalRegistration", "Register a principal (a user)."),
        ("/admin/workloads", "WorkloadRegistration", "Register a workload and its key."),
    ):
        paths[path] = {
            "post": {
                "summary": summary,
                "security": _ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(schema)}},
                },
                "responses": {"201": _json("Registered.", _ref("LogIndex")), **_ADMIN_ERRORS},
            }
        }
    paths["/log/checkpoint"] = {
        "get": {
            "summary": "The latest signed checkpoint (C2SP tlog-checkpoint, signed note).",
            "responses": {
                "200": {
                    "description": "The signed note.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "404": _problem("The log is empty."),
            },
        }
    }
    paths["/log/proof/inclusion"] = {
        "get": {
            "summary": "Inclusion proof of entry index in the tree of the given size.",
            "parameters": [_query("index", "Leaf index."), _query("size", "Tree size.")],
            "responses": {"200": _json("Proof.", _ref("InclusionProof")), **_READ_ERRORS},
        }
    }
    paths["/log/proof/consistency"] = {
        "get": {
            "summary": "Consistency proof between two tree sizes.",
            "parameters": [_query("old", "Older tree size."), _query("size", "Newer tree size.")],
            "responses": {"200": _json("Proof.", _ref("ConsistencyProof")), **_READ_ERRORS},
        }
    }
    paths["/log/entries"] = {
        "get": {
            "summary": "Entries [start, end), at most 1000 per page.",
            "security": [{}, *_ADMIN],
            "parameters": [
                _query("start", "First index."),
                _query("end", "One past the last index.", required=False),
            ],
            "responses": {"200": _json("Entries.", _ref("Entries")), **_READ_ERRORS},
        }
    }
    paths["/trace/{event_id}"] = {
        "get": {
            "summary": "The attribution report of one event.",
            "security": [{}, *_ADMIN],
            "parameters": [
                {
                    "name": "event_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "maxLength": 64},
                }
            ],
            "responses": {"200": _json("Report.", _ref("Report")), **_READ_ERRORS},
        }
    }
    for item in paths.values():
        for operation in item.values():
            operation["responses"].setdefault("500", _problem("Internal error (a bug; logged)."))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Authchain authority",
            "version": "1",
            "description": "Task tokens by RFC 8693 token exchange with DPoP (RFC 9449), action "
            "reports, and the signed audit log (RFC 9162, C2SP tlog-checkpoint).",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "adminBearer": {"type": "http", "scheme": "bearer"},
                "dpop": {"type": "apiKey", "in": "header", "name": "DPoP"},
            },
        },
    }
