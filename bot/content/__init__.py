"""The content editors own: the knowledge base, intents, their checks, edits and the questions missed."""
