"""Engines: where clients, subscriptions and queues live."""
