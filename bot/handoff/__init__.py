"""Live-agent handoff: the queue, assignment, agents and the customer's context card."""
