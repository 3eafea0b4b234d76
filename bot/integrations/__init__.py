"""supportbot inside bots people already have: an aiogram Router, and actions for Rasa assistants."""
