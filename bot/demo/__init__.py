"""The demo shop's made-up data: a context provider for trying the agent's card without a real shop."""
