"""Call records: what happened on each call, kept after it ends (``IVR_RECORDS``)."""
