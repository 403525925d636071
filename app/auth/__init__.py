"""Who may call the API: API keys, roles, and the dependency every route declares."""
