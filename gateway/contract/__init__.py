"""The public contract as data.

* ``limits``: every limit, named once;
* ``fields``: the wire converters (money, rates, identity numbers, e-mail, mobile, ...);
* ``reading``: ``read`` / ``parse`` / ``Parsed`` (fast pydantic path, exact slow path);
* ``requests``: the request models (bodies, query strings, the token form);
* ``responses``: every response body and stream message as a ``TypedDict``;
* ``operations``: the table of HTTP operations;
* ``openapi``: the OpenAPI 3.1 document generated from all of the above (``spec()``);
* ``docs``: the /docs page rendered from it (``docs_html()``).

Nothing here does I/O: the gateway reads requests with ``requests.read`` / ``requests.parse``
and maps ``errors.InvalidRequest`` to an RFC 9457 problem. Rules that need the round or the
guarantee package are the use cases' (``usecases``): a route hands them what parsed and the
field errors, and they answer with one refusal listing both.
"""
