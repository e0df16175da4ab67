"""Bolt listeners by kind; each module has ``register(app, ctx)``."""
