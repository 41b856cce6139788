"""The web layer: Starlette routes, templates, the agent websocket and the JSON API.

It calls ``inbox`` actions and queries; it holds no business rules. ``web.server`` and
``web.cli`` form the composition root that wires channels, inbox and routing together.
"""
