"""Custom actions: rasa-sdk Action classes run on an action server or in-process, and what they return."""
