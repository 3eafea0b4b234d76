"""The demo shop's custom actions (rasa-sdk), run in-process by default (config.yaml actions.package)."""
