"""The HTTP side: the FastAPI app, the agent console and demo pages, API errors, rate limits, log redaction."""
