"""The JSON API under ``/api/v1``; its contract is ``web.api.openapi.OPENAPI``."""
