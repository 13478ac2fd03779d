"""The OpenAPI 3.1 document of the bridge's own HTTP API: shared pieces, each area's paths, the assembly."""
