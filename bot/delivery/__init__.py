"""Getting messages through: the stored outbox of replies and the spool of acknowledged webhook bodies."""
