"""The JSON API: one module per resource, each with its own blueprint; the webhooks; the OpenAPI document."""
