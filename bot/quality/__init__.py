"""Measuring the bot: accuracy on labelled messages (`supportbot eval`) and speed (`supportbot bench`)."""
