"""What tests share that is not a fixture: stand-in platform APIs, a live server, the test channel, helpers."""
