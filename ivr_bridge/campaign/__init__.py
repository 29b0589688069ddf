"""Outbound campaigns: contacts, calling hours, rounds, retries, pacing and outcomes."""
