"""ivr-bridge: a voice on a phone line (Twilio Media Streams + LMNT speech sessions)."""

__version__ = "0.1.0"
