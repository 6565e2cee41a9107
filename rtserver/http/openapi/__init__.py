"""The OpenAPI 3.1 description of the HTTP endpoints, served at ``/openapi.json``, and
its reference page at ``/docs/api`` (local files only)."""

from rtserver.http.openapi._document import openapi_document
from rtserver.http.openapi._routes import blueprint

__all__ = ["blueprint", "openapi_document"]
