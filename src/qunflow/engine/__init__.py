"""The engine: the one outbound path (outbox), shared send limits and outbound webhooks (notifier)."""
