"""Smart-card sessions: the authorizer behind the mTLS front, its decision log, and session checks."""
