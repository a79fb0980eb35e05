"""The PyFlink job: sessions, per-minute event counts and late events from the `events` topic."""
