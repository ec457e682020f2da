"""kefu.server.service: the customer-service layer (tenants, agents, routing, queues, transfer, AI plugins)."""
