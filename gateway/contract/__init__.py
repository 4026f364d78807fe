"""The public contract as data: request models (``requests``), response shapes
(``responses``), the table of operations (``operations``), and what is generated from them:
the OpenAPI 3.1 document (``openapi.spec()``) and the /docs page (``docs.docs_html()``).

Nothing here does I/O; the gateway reads requests with ``requests.read`` / ``requests.parse``
and maps ``errors.InvalidRequest`` to an RFC 9457 problem.
"""
