"""The host client: configuration, HTTP session, trust store, image store, fetch and push."""
