"""Webhooks: committed events delivered at least once, in order per conversation, to subscribed bank systems."""
